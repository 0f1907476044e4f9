"""Batched geometry: cell parameters, conversions and the neighbour list against ASE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.geometry import cell_to_cellpar, cellpar_to_cell
from ase.neighborlist import neighbor_list as ase_neighbor_list

from conftest import random_skewed_structure
from structrepdiff.geometry.cell import lattice_problem, matrix_to_params, params_to_matrix
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.geometry.neighbors import neighbor_list, pair_vectors


def _random_atoms(seed: int, n: int, outside: bool = True) -> Atoms:
    rng = np.random.default_rng(seed)
    cellpar = [*rng.uniform(2.5, 5.0, 3), *rng.uniform(55.0, 125.0, 3)]
    cell = cellpar_to_cell(cellpar)
    frac = rng.uniform(-1.5, 2.5, (n, 3)) if outside else rng.uniform(0, 1, (n, 3))
    return Atoms(numbers=rng.integers(1, 30, n), positions=frac @ cell, cell=cell, pbc=True)


def test_params_matrix_match_ase() -> None:
    rng = np.random.default_rng(0)
    pars = np.column_stack([rng.uniform(2, 9, (20, 3)), rng.uniform(60, 120, (20, 3))])
    mats = params_to_matrix(torch.tensor(pars))
    for p, m in zip(pars, mats, strict=True):
        np.testing.assert_allclose(m.numpy(), cellpar_to_cell(p), atol=1e-12)
    np.testing.assert_allclose(matrix_to_params(mats).numpy(), pars, rtol=1e-10)
    np.testing.assert_allclose(
        matrix_to_params(mats).numpy(), [cell_to_cellpar(m.numpy()) for m in mats], rtol=1e-10
    )


def test_lattice_problem_reasons() -> None:
    rows = torch.tensor([
        [4.0, 4.0, 4.0, 90.0, 90.0, 90.0],
        [-1.0, 4.0, 4.0, 90.0, 90.0, 90.0],
        [4.0, 4.0, 4.0, 190.0, 90.0, 90.0],
        [4.0, 4.0, 4.0, 10.0, 10.0, 170.0],
        [4.0, float("nan"), 4.0, 90.0, 90.0, 90.0],
    ], dtype=torch.float64)  # fmt: skip
    got = lattice_problem(rows)
    assert got[0] is None
    assert "non-positive" in got[1]
    assert "outside (0, 180)" in got[2]
    assert "no valid cell" in got[3]
    assert "non-finite" in got[4]


def test_conversions_round_trip(skewed_structure) -> None:
    atoms = Atoms(
        numbers=[6, 8],
        positions=[[0, 0, 0], [1.2, 0.3, 5.0]],
        cell=[[3, 0, 0], [1, 3, 0], [0, 1, 4]],
        pbc=True,
    )
    batch = Crystals.from_atoms([atoms, atoms])
    assert batch.batch.tolist() == [0, 0, 1, 1]
    back = batch.to_atoms()[1]
    np.testing.assert_allclose(back.positions, atoms.positions)
    np.testing.assert_allclose(np.asarray(back.cell), np.asarray(atoms.cell))
    s_batch = Crystals.from_structures([skewed_structure])
    s_back = s_batch.to_structures()[0]
    np.testing.assert_allclose(s_back.cart_coords, skewed_structure.cart_coords)
    assert s_back.atomic_numbers == skewed_structure.atomic_numbers
    assert s_back.lattice == skewed_structure.lattice


def test_crystals_validation() -> None:
    with pytest.raises(ValueError, match="at least one atom"):
        Crystals.from_arrays([np.zeros((0, 3))], [np.zeros(0, int)], [np.eye(3)])
    with pytest.raises(ValueError, match="sorted"):
        cells = torch.eye(3)[None].repeat(2, 1, 1)
        Crystals(torch.zeros(2, 3), torch.ones(2, dtype=torch.long), cells, torch.tensor([1, 0]))


def _ase_set(atoms: Atoms, cutoff: float) -> set:
    i, j, S = ase_neighbor_list("ijS", atoms, cutoff)
    return set(zip(i.tolist(), j.tolist(), map(tuple, S.tolist()), strict=True))


@pytest.mark.parametrize(
    ("seed", "n", "cutoff"), [(0, 1, 7.0), (1, 3, 9.0), (2, 5, 6.5), (3, 2, 12.0)]
)
def test_neighbor_pairs_match_ase(seed: int, n: int, cutoff: float) -> None:
    """Cutoffs 2-4 times the cell size, skewed cells, atoms far outside the cell."""
    atoms = _random_atoms(seed, n)
    nl = neighbor_list(Crystals.from_atoms([atoms]), cutoff)
    ours = set(zip(nl.i.tolist(), nl.j.tolist(), map(tuple, nl.shifts.tolist()), strict=True))
    assert len(ours) == len(nl)  # no duplicates
    assert ours == _ase_set(atoms, cutoff)
    assert (nl.i[1:] >= nl.i[:-1]).all()  # sorted by centre atom


def test_neighbor_pairs_batched_match_ase() -> None:
    atoms = [_random_atoms(s, n) for s, n in [(10, 2), (11, 4), (12, 1)]]
    nl = neighbor_list(Crystals.from_atoms(atoms), 8.0)
    offset, expected = 0, set()
    for a in atoms:
        expected |= {(i + offset, j + offset, S) for i, j, S in _ase_set(a, 8.0)}
        offset += len(a)
    got = set(zip(nl.i.tolist(), nl.j.tolist(), map(tuple, nl.shifts.tolist()), strict=True))
    assert got == expected


def test_pair_distances_and_gradients_match_ase() -> None:
    """E = Σ exp(-d) over pairs: autograd gradients vs the analytic ones from ASE's vectors."""
    atoms = _random_atoms(5, 4)
    cutoff = 7.0
    c = Crystals.from_atoms([atoms])
    c.positions.requires_grad_(True)
    c.cell.requires_grad_(True)
    nl = neighbor_list(c, cutoff)
    d = pair_vectors(c, nl).norm(dim=-1)
    torch.exp(-d).sum().backward()

    i, j, D, S, dist = ase_neighbor_list("ijDSd", atoms, cutoff)
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    ours_order = np.lexsort((*nl.shifts.numpy().T[::-1], nl.j.numpy(), nl.i.numpy()))
    np.testing.assert_allclose(d.detach().numpy()[ours_order], dist[order], rtol=1e-12)
    coef = (-np.exp(-dist) / dist)[:, None] * D  # dE/dD per pair
    g_pos = np.zeros_like(atoms.positions)
    np.add.at(g_pos, j, coef)
    np.add.at(g_pos, i, -coef)
    g_cell = np.einsum("pk,pl->kl", S.astype(float), coef)
    np.testing.assert_allclose(c.positions.grad.numpy(), g_pos, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c.cell.grad[0].numpy(), g_cell, rtol=1e-9, atol=1e-12)


def test_neighbor_list_rejects_bad_input() -> None:
    c = Crystals.from_arrays([np.zeros((1, 3))], [np.array([6])], [np.diag([1.0, 1.0, 0.0])])
    with pytest.raises(ValueError, match="singular"):
        neighbor_list(c, 3.0)
    good = Crystals.from_structures([random_skewed_structure(3, n=2)])
    with pytest.raises(ValueError, match="positive"):
        neighbor_list(good, 0.0)


def test_the_batched_neighbour_pass_equals_the_per_crystal_pass_exactly():
    """Both methods, and batched passes cut into several padded chunks, give the same pairs
    in the same order, on crystals of mixed size and skew (one of them tiny and far-reaching)."""
    import structrepdiff.geometry.neighbors as nb

    structs = [random_skewed_structure(seed, n=2 + seed % 4) for seed in range(6)]
    c = Crystals.from_structures(structs, dtype=torch.float64)
    single = nb.neighbor_list(c, 5.0, method="per_crystal")
    batched = nb.neighbor_list(c, 5.0, method="batched")
    old, chunked = nb._MAX_CANDIDATES, []
    try:  # 3000: three padded chunks of two; 600: a 5-atom crystal too large to pad alone
        for bound in (3000, 600):
            nb._MAX_CANDIDATES = bound
            reach = nb._reach(c.cell, 5.0).tolist()
            kinds = [k for *_, k in nb._chunks(c.n_atoms.tolist(), reach, True)]
            assert len(kinds) >= 3 and (bound == 3000 or not all(kinds))
            chunked.append(nb.neighbor_list(c, 5.0, method="batched"))
    finally:
        nb._MAX_CANDIDATES = old
    assert len(single) > 100
    for other in (batched, *chunked):
        for a, b in ((other.i, single.i), (other.j, single.j), (other.shifts, single.shifts)):
            assert torch.equal(a, b)


def test_auto_batches_only_alike_crystals_on_a_cpu():
    import structrepdiff.geometry.neighbors as nb

    same = Crystals.from_structures([random_skewed_structure(1, n=3)] * 4)
    mixed = Crystals.from_structures([random_skewed_structure(k, n=2 + k) for k in range(3)])
    assert nb._alike(same.n_atoms.tolist(), nb._reach(same.cell.double(), 5.0))
    assert not nb._alike(mixed.n_atoms.tolist(), nb._reach(mixed.cell.double(), 5.0))
    with pytest.raises(ValueError, match="method"):
        nb.neighbor_list(same, 5.0, method="fast")
