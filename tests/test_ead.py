"""EAD: hand-computed values, an independent NumPy/ASE reference, gradients, dtype and chunking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from conftest import random_skewed_structure
from structrepdiff.descriptor.config import PRESETS, EADConfig, get_preset
from structrepdiff.descriptor.ead import compute_ead, orbitals
from structrepdiff.geometry.crystals import Crystals

CHEAP = EADConfig(L=1, etas=(1.0, 20.0), rs=(0.0, 1.5, 2.0), cutoff=6.0, scale=1.0)


def test_paper_preset_is_the_papers() -> None:
    p = get_preset("paper")
    assert p.L == 1 and p.etas == (1.0, 20.0, 90.0) and p.cutoff == 20.0
    assert len(p.rs) == 50 and p.rs[0] == 0.0 and p.rs[-1] == 9.8 and p.rs[3] == 0.6
    assert p.n_features == 300 and p.weights == "atomic_number" and p.scale == 1e-6
    assert PRESETS["small"].n_features == 180


def test_orbitals_counts() -> None:
    assert [len(orbitals(L)) for L in range(4)] == [1, 4, 10, 20]
    assert orbitals(1) == ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1))


def test_two_atom_cell_by_hand() -> None:
    """O at (1,1,1), Fe at (3,1,1) in a 10 Å cube, R_c = 6: each atom sees only the other."""
    atoms = Atoms(numbers=[8, 26], positions=[[1, 1, 1], [3, 1, 1]], cell=np.eye(3) * 10, pbc=True)
    out = compute_ead(Crystals.from_atoms([atoms]), CHEAP)
    fc = 0.5 * (math.cos(math.pi * 2.0 / 6.0) + 1.0)
    for atom, (z_other, sign) in enumerate([(26, 1.0), (8, -1.0)]):
        expect_s, expect_p = [], []
        for eta in (1.0, 20.0):
            for rs in (0.0, 1.5, 2.0):
                t_s = math.exp(-eta * (2.0 - rs) ** 2) * z_other * fc
                t_x = sign * 2.0 * t_s  # x = ±2 Å, y = z = 0
                expect_s.append(t_s**2)
                expect_p.append((t_s**2 + t_x**2) / 6.0**2)
        np.testing.assert_allclose(out.ead[atom].numpy(), expect_s + expect_p, rtol=1e-12)
    np.testing.assert_allclose(out.nearest.numpy(), [2.0, 2.0])


def reference_ead(atoms: Atoms, cfg: EADConfig) -> np.ndarray:
    """Straightforward NumPy EAD on ASE's neighbour list (independent of our pair code)."""
    i, j, D, d = ase_neighbor_list("ijDd", atoms, cfg.cutoff)
    fc = 0.5 * (np.cos(np.pi * d / cfg.cutoff) + 1.0)
    w = (atoms.numbers[j] if cfg.weights == "atomic_number" else np.ones_like(d)) * fc
    etas, rs = np.array(cfg.etas)[:, None, None], np.array(cfg.rs)[:, None]
    out = np.zeros((len(atoms), cfg.L + 1, len(cfg.etas), len(cfg.rs)))
    for a in range(len(atoms)):
        m = i == a
        T = {}
        for o in orbitals(cfg.L):
            norm = math.sqrt(np.prod([math.factorial(k) for k in o]))
            mono = np.prod(D[m] ** np.array(o), axis=1) / norm
            gauss = np.exp(-etas * (d[m] - rs)[None] ** 2)  # (η, Rs, pairs)
            T[o] = (gauss * (mono * w[m])).sum(-1)
        for l in range(cfg.L + 1):
            pref = math.factorial(l) / cfg.cutoff ** (2 * l)
            out[a, l] = pref * sum(T[o] ** 2 for o in T if sum(o) <= l)
    return out.reshape(len(atoms), -1) * cfg.scale


@pytest.mark.parametrize("cfg", [
    CHEAP,
    EADConfig(L=3, etas=(0.5, 4.0), rs=(0.0, 1.0, 2.5, 4.0), cutoff=7.5, weights="ones"),
    EADConfig(L=2, etas=(1.0,), rs=(1.0, 3.0), cutoff=11.0),
])  # fmt: skip
def test_matches_reference(cfg: EADConfig) -> None:
    s = random_skewed_structure(7, n=5)
    atoms = Crystals.from_structures([s]).to_atoms()[0]
    atoms.positions += np.random.default_rng(1).uniform(-6, 6, atoms.positions.shape)  # outside
    ours = compute_ead(Crystals.from_atoms([atoms]), cfg).ead.numpy()
    np.testing.assert_allclose(ours, reference_ead(atoms, cfg), rtol=1e-9, atol=1e-300)


def test_paper_preset_matches_reference_on_a_small_cell() -> None:
    """R_c = 20 Å on a ~4 Å cell: thousands of images per atom."""
    s = random_skewed_structure(2, n=3)
    atoms = Crystals.from_structures([s]).to_atoms()[0]
    ours = compute_ead(Crystals.from_atoms([atoms]), PRESETS["paper"]).ead.numpy()
    np.testing.assert_allclose(ours, reference_ead(atoms, PRESETS["paper"]), rtol=1e-9, atol=1e-300)


def test_chunking_does_not_change_values() -> None:
    c = Crystals.from_structures([random_skewed_structure(k, n=3 + k) for k in range(3)])
    whole = compute_ead(c, CHEAP).ead
    tiny = compute_ead(c, CHEAP, chunk_elements=64)  # one atom per chunk
    np.testing.assert_allclose(tiny.ead.numpy(), whole.numpy(), rtol=1e-13)


def test_float32_close_to_float64() -> None:
    c = Crystals.from_structures([random_skewed_structure(4, n=4)])
    e64 = compute_ead(c, PRESETS["paper"]).ead
    e32 = compute_ead(c.to(torch.float32), PRESETS["paper"]).ead
    assert e32.dtype == torch.float32
    big = e64 > 1e-6 * e64.max()
    np.testing.assert_allclose(e32[big].double().numpy(), e64[big].numpy(), rtol=2e-4)


def _near_cutoff_crystal(cfg: EADConfig) -> Crystals:
    """Two atoms in a long cell whose pair distance lies 5e-4 Å inside R_c."""
    L = 2 * cfg.cutoff + 5.0
    pos = np.array([[0.3, 0.2, 0.1], [0.3 + cfg.cutoff - 1e-3, 0.25, 0.05]])
    return Crystals.from_arrays([pos], [np.array([8, 14])], [np.diag([L, 7.0, 7.5])])


def test_gradcheck_positions_including_near_cutoff() -> None:
    cfg = EADConfig(L=1, etas=(0.05, 1.0), rs=(0.0, 2.0, 5.0), cutoff=5.0, scale=1e-3)
    for c in (_near_cutoff_crystal(cfg), Crystals.from_structures([random_skewed_structure(9, 3)])):
        pos = c.positions.clone().requires_grad_(True)

        def f(p, c=c):
            return compute_ead(Crystals(p, c.numbers, c.cell, c.batch), cfg).ead

        assert torch.autograd.gradcheck(f, (pos,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_cell() -> None:
    cfg = EADConfig(L=1, etas=(0.5, 4.0), rs=(0.0, 2.0), cutoff=5.0, scale=1e-3)
    c = Crystals.from_structures([random_skewed_structure(11, 2)])
    cell = c.cell.clone().requires_grad_(True)

    def f(cl):
        return compute_ead(Crystals(c.positions, c.numbers, cl, c.batch), cfg).ead

    assert torch.autograd.gradcheck(f, (cell,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_isolated_atom_has_zero_ead_and_infinite_nearest() -> None:
    c = Crystals.from_arrays([np.zeros((1, 3))], [np.array([6])], [np.eye(3) * 8.0])
    out = compute_ead(c, CHEAP)
    assert torch.all(out.ead == 0) and torch.isinf(out.nearest).all()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="L must"):
        EADConfig(L=4)
    with pytest.raises(ValueError, match="weights"):
        EADConfig(weights="electronegativity")
    with pytest.raises(ValueError, match="unknown EAD preset"):
        get_preset("nope")
    assert EADConfig.from_dict(PRESETS["small"].to_dict()) == PRESETS["small"]
