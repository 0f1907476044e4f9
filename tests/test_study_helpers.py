"""The helpers the benchmark scripts and studies share, now public library functions."""

from __future__ import annotations

import csv

import pytest
import torch
from tests.conftest import perovskite
from tests.test_reconstruct import EAD, REP, crystals

from structrepdiff.data.io import SIZE_BINS, LoadedStructures, seeded_subset
from structrepdiff.evaluate.run import score_run_folder
from structrepdiff.reconstruct.optimize import descriptor_loss, true_targets


def test_seeded_subset_is_seeded_in_file_order_and_stratifies():
    structs = []
    for reps in (1, 2, 3):  # 5, 10 and 15 atoms: one size bin each, four crystals per bin
        s = perovskite("Sr", "Ti", 4.0)
        s.make_supercell([reps, 1, 1])
        structs += [s] * 4
    loaded = LoadedStructures([f"c{k}" for k in range(len(structs))], structs)
    ids, _ = seeded_subset(loaded, 6, seed=1)
    assert ids == seeded_subset(loaded, 6, seed=1)[0] != seeded_subset(loaded, 6, seed=2)[0]
    assert ids == sorted(ids, key=lambda i: int(i[1:]))
    _, picked = seeded_subset(loaded, 3, seed=0, stratified=True)
    sizes = sorted(len(s) for s in picked)
    assert [next(k for k, (lo, hi) in enumerate(SIZE_BINS) if lo <= n <= hi)
            for n in sizes] == [0, 1, 2]  # fmt: skip


def test_true_targets_put_the_loss_at_zero_at_the_true_positions():
    structs = crystals()
    targets, s, pos = true_targets(list(structs), list(structs.values()), REP, torch.float64)
    loss = descriptor_loss(pos, s, EAD, None, 0.1)
    assert [t.id for t in targets] == list(structs)
    assert float(loss.max()) < 1e-6
    assert float(descriptor_loss(pos + 0.2, s, EAD, None, 0.1).min()) >= 0  # a real loss


def test_score_run_folder_counts_by_hand(tmp_path):
    sto, bto = perovskite("Sr", "Ti", 3.9), perovskite("Ba", "Ti", 4.0)
    sto.to(filename=str(tmp_path / "a.cif"))
    bto.to(filename=str(tmp_path / "b.cif"))
    (tmp_path / "c.cif").write_text("not a cif")
    with open(tmp_path / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["id", "status", "loss", "cif"])
        w.writeheader()
        w.writerow({"id": "a", "status": "converged", "loss": 1e-4, "cif": "a.cif"})
        w.writerow({"id": "b", "status": "not_converged", "loss": 0.3, "cif": "b.cif"})
        w.writerow({"id": "c", "status": "not_converged", "loss": 0.5, "cif": "c.cif"})
        w.writerow({"id": "d", "status": "rejected", "loss": "", "cif": ""})
    m = score_run_folder(tmp_path, {"a": sto, "b": sto, "c": sto}, threshold=1e-3)
    assert (m["n"], m["n_reconstructed"], m["n_unreadable_cif"]) == (4, 3, 1)
    assert m["converged_pct"] == pytest.approx(25.0) and m["median_loss"] == pytest.approx(0.3)
    assert m["struct_valid_pct"] == pytest.approx(50.0) and m["p1_pct"] == 0.0  # both Pm-3m
    assert m["match_clean_pct"] == pytest.approx(100 / 3)  # a matches; b (BaTiO3) and c do not
