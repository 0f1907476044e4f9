"""Reconstruction: small crystals come back from their own R; masks, resume, seeds, statuses."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from structrepdiff.cli.main import main
from structrepdiff.descriptor.config import EADConfig
from structrepdiff.features import FeatureSet, save_features
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import Target, reconstruct_batch
from structrepdiff.representation.decode import decode
from structrepdiff.representation.encode import Representation, encode_structures

EAD = EADConfig(L=1, etas=(1.0, 20.0), rs=tuple(np.round(np.arange(0, 5.0, 0.25), 4)), cutoff=5.0)
REP = Representation(EAD, (8, 11, 17, 22, 38, 55), n_max=5)
FAST = ReconstructConfig(trials=3, hops=3, steps=200, seed=0)
MATCHER = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)


def crystals() -> dict[str, Structure]:
    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    nacl = Structure(
        Lattice.cubic(5.64),
        ["Na"] * 4 + ["Cl"] * 4,
        [*fcc, [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]],
    )
    return {
        "NaCl": nacl.get_primitive_structure(),
        "CsCl": Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "SrTiO3": Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                            [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5],
                             [0, 0.5, 0.5]]),
    }  # fmt: skip


def targets_of(structs: dict[str, Structure]) -> list[Target]:
    decoded = decode(encode_structures(list(structs.values()), REP), REP)
    return [
        Target(k, d.numbers, d.lattice, d.ead_max, d.ead_min, d.d_min)
        for k, d in zip(structs, decoded, strict=True)
    ]


def as_structure(o) -> Structure:
    return Structure(Lattice(o.cell), o.numbers.tolist(), o.positions, coords_are_cartesian=True)


@pytest.fixture(scope="module")
def outcomes():
    structs = crystals()
    return structs, reconstruct_batch(targets_of(structs), EAD, FAST)


def test_small_crystals_are_recovered(outcomes) -> None:
    structs, out = outcomes
    for o, s in zip(out, structs.values(), strict=True):
        assert o.converged and o.loss < FAST.threshold, o.id
        rms = MATCHER.get_rms_dist(as_structure(o), s)
        assert rms is not None and rms[0] < 0.02, (o.id, rms)
        assert sorted(o.numbers) == sorted(s.atomic_numbers)
        frac = np.linalg.solve(o.cell.T, o.positions.T).T
        assert (frac >= -1e-6).all() and (frac < 1 + 1e-6).all()  # wrapped into the cell


def test_converged_crystals_stop_and_unreachable_ones_use_the_budget() -> None:
    easy, hard = targets_of({"CsCl": crystals()["CsCl"]})[0], targets_of(crystals())[0]
    # no arrangement of 2 atoms has twice the EAD of rock salt: this one can never converge
    hard = dataclasses.replace(
        hard, id="unreachable", ead_max=2 * hard.ead_max, ead_min=2 * hard.ead_min
    )
    cfg = ReconstructConfig(trials=2, hops=2, steps=60, seed=1, patience=0)
    o_easy, o_hard = reconstruct_batch([easy, hard], EAD, cfg)
    assert o_easy.converged and o_easy.steps < 60
    assert not o_hard.converged and o_hard.steps == 2 * 2 * 60
    alone = reconstruct_batch([easy], EAD, cfg)[0]
    assert alone.steps == o_easy.steps  # per-crystal seeds: the partner changes nothing
    np.testing.assert_allclose(alone.positions, o_easy.positions, atol=1e-5)


def test_same_seed_same_result_other_seed_other_start() -> None:
    t = targets_of(crystals())[2:]  # SrTiO3
    cfg = ReconstructConfig(trials=1, hops=1, steps=40, seed=3)
    a, b = reconstruct_batch(t, EAD, cfg)[0], reconstruct_batch(t, EAD, cfg)[0]
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.loss == b.loss
    c = reconstruct_batch(t, EAD, dataclasses.replace(cfg, seed=4))[0]
    assert not np.allclose(a.positions, c.positions)


def _feature_file(tmp_path, rows: np.ndarray, ids: list[str]):
    path = tmp_path / "R.npz"
    save_features(FeatureSet(rows, ids, REP), path)
    return path


def _summary(out) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_cifs_and_resumes_without_redoing(tmp_path, monkeypatch, capsys) -> None:
    import structrepdiff.reconstruct.run as run

    structs = crystals()
    R = encode_structures(list(structs.values()), REP)
    npz, out = _feature_file(tmp_path, R, list(structs)), tmp_path / "rec"
    seen: list[str] = []
    real = run.reconstruct_batch
    monkeypatch.setattr(
        run,
        "reconstruct_batch",
        lambda b, e, c, st=None, **kw: seen.extend(t.id for t in b) or real(b, e, c, st, **kw),
    )
    args = [
        "reconstruct",
        "--representations",
        str(npz),
        "--out",
        str(out),
        "--trials",
        "3",
        "--hops",
        "3",
        "--steps",
        "200",
        "--batch-size",
        "2",
        "--no-progress",
    ]
    assert main([*args, "--limit", "2"]) == 0
    assert seen == ["NaCl", "CsCl"]
    assert main(args) == 0
    assert seen == ["NaCl", "CsCl", "SrTiO3"]  # only the new id was reconstructed
    rows = _summary(out)
    assert [r["id"] for r in rows] == list(structs)
    for r, s in zip(rows, structs.values(), strict=True):
        assert r["status"] == "converged" and float(r["loss"]) < 1e-3
        pred = Structure.from_file(out / r["cif"])
        assert MATCHER.fit(pred, s)
    assert "(2 already done before this run)" in capsys.readouterr().out
    # other settings in the same folder are refused, --force starts over
    assert main([*args, "--seed", "5"]) != 0
    assert main([*args, "--seed", "5", "--force", "--limit", "1"]) == 0
    assert [r["id"] for r in _summary(out)] == ["NaCl"]


def test_bad_vectors_get_statuses_and_nothing_raises(tmp_path, monkeypatch) -> None:
    import structrepdiff.reconstruct.run as run

    good = encode_structures([crystals()["CsCl"]], REP)[0]
    sl = REP.layout.slices
    nan_row, bad_cell, no_atoms, raises = good.copy(), good.copy(), good.copy(), good.copy()
    nan_row[sl["ead_max"]][3] = np.nan
    bad_cell[sl["lattice"]] = [4.0, 4.0, 4.0, 10.0, 10.0, 170.0]
    no_atoms[sl["n_atoms"]] = 0.0
    rows = np.stack([nan_row, bad_cell, no_atoms, raises])
    npz, out = _feature_file(tmp_path, rows, ["nan", "cell", "empty", "boom"]), tmp_path / "r"
    real = run.reconstruct_batch

    def explode(batch, ead, cfg, starts=None, **kw):
        if any(t.id == "boom" for t in batch):
            raise RuntimeError("simulated failure")
        return real(batch, ead, cfg, starts, **kw)

    monkeypatch.setattr(run, "reconstruct_batch", explode)
    assert (
        main(
            [
                "reconstruct",
                "--representations",
                str(npz),
                "--out",
                str(out),
                "--steps",
                "5",
                "--trials",
                "1",
                "--hops",
                "1",
                "--no-progress",
            ]
        )
        == 1  # every vector bad: nothing produced, a non-zero exit (and a row each)
    )
    by_id = {r["id"]: r for r in _summary(out)}
    assert by_id["nan"]["status"] == "rejected" and "non-finite" in by_id["nan"]["reason"]
    assert by_id["cell"]["status"] == "rejected" and "no valid cell" in by_id["cell"]["reason"]
    assert by_id["empty"]["status"] == "rejected" and "zero atoms" in by_id["empty"]["reason"]
    assert by_id["boom"]["status"] == "failed" and "simulated failure" in by_id["boom"]["reason"]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="steps"):
        ReconstructConfig(steps=0)
    with pytest.raises(ValueError, match="dtype"):
        ReconstructConfig(dtype="float16")


def test_overlap_term_is_zero_at_the_crystal_and_separates_close_atoms() -> None:
    import torch

    from structrepdiff.geometry.crystals import Crystals
    from structrepdiff.geometry.neighbors import neighbor_list
    from structrepdiff.reconstruct.optimize import _stack, descriptor_loss

    s_true = crystals()["CsCl"]
    target = targets_of({"CsCl": s_true})
    s = _stack(target, torch.float64)
    frac = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64)  # Cs, Cl
    order = np.argsort(s_true.atomic_numbers, kind="stable")
    pos_true = (frac[order] @ s.cell[0]).clone()

    def loss(pos: torch.Tensor, w: float) -> torch.Tensor:
        nl = neighbor_list(Crystals(pos, s.numbers, s.cell, s.batch), EAD.cutoff)
        return descriptor_loss(pos, s, EAD, nl, 0.1, overlap_weight=w)

    assert torch.allclose(loss(pos_true, 0.0), loss(pos_true, 5.0))  # no penalty at the truth
    close = pos_true.clone()
    close[1] = close[0] + torch.tensor([1.0, 0.2, 0.1], dtype=torch.float64)  # far below d_min
    close.requires_grad_(True)
    extra = loss(close, 5.0) - loss(close, 0.0)
    assert extra.item() > 0.5
    (g,) = torch.autograd.grad(extra.sum(), close)
    sep = (close[1] - close[0]).detach()
    assert torch.dot(g[1] - g[0], sep) < 0  # descending the penalty moves the atoms apart


def test_swap_hop_exchanges_two_atoms_of_different_species() -> None:
    import torch

    from structrepdiff.reconstruct.optimize import _hop, _stack, crystal_generator

    t = targets_of(crystals())  # NaCl, CsCl, SrTiO3
    s = _stack(t, torch.float64)
    pos = torch.arange(s.numbers.numel() * 3, dtype=torch.float64).reshape(-1, 3)
    gens = [crystal_generator(0, x.id) for x in t]
    cfg = ReconstructConfig(swap_prob=1.0)
    new = _hop(pos, s, gens, cfg)
    for k in range(len(t)):
        atoms = (s.batch == k).nonzero()[:, 0]
        changed = atoms[(new[atoms] != pos[atoms]).any(1)]
        assert len(changed) == 2
        i, j = changed.tolist()
        assert s.numbers[i] != s.numbers[j]
        assert torch.equal(new[i], pos[j]) and torch.equal(new[j], pos[i])
    plain = _hop(pos, s, [crystal_generator(0, x.id) for x in t], ReconstructConfig())
    assert ((plain - pos).abs() <= 1.0).all() and not torch.equal(plain, pos)
