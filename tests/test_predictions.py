"""Reading other models' predictions: CIF folders, summary.csv folders, extxyz, CDVAE CSV."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from ase.io import write
from pymatgen.io.ase import AseAtomsAdaptor
from tests.conftest import random_skewed_structure

from structrepdiff.data.predictions import Prediction, load_predictions, save_predictions_csv

STRUCTS = [random_skewed_structure(k) for k in range(3)]


def _same(a, b) -> bool:
    return a.composition == b.composition and a.lattice == b.lattice


def test_cif_folder_and_single_cif(tmp_path) -> None:
    for k, s in enumerate(STRUCTS):
        s.to(filename=str(tmp_path / f"x{k}.cif"))
    (tmp_path / "bad.cif").write_text("data_broken\n_cell_length_a oops\n")
    preds = load_predictions(tmp_path)
    assert [p.id for p in preds] == ["bad", "x0", "x1", "x2"]
    assert preds[0].structure is None and "unreadable CIF" in preds[0].reason
    assert all(_same(p.structure, s) for p, s in zip(preds[1:], STRUCTS, strict=True))
    one = load_predictions(tmp_path / "x1.cif")
    assert len(one) == 1 and one[0].id == "x1" and _same(one[0].structure, STRUCTS[1])


def test_summary_folder_keeps_rejected_rows_with_their_reason(tmp_path) -> None:
    STRUCTS[0].to(filename=str(tmp_path / "g0.cif"))
    with open(tmp_path / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["id", "status", "loss", "reason", "cif"])
        w.writeheader()
        w.writerow({"id": "g0", "status": "converged", "loss": 1e-4, "reason": "", "cif": "g0.cif"})
        w.writerow({"id": "g1", "status": "rejected", "loss": "", "reason": "zero atoms",
                    "cif": ""})  # fmt: skip
    preds = load_predictions(tmp_path)
    assert [p.id for p in preds] == ["g0", "g1"]
    assert _same(preds[0].structure, STRUCTS[0]) and preds[0].reason is None
    assert preds[1].structure is None and preds[1].reason == "rejected: zero atoms"


def test_extxyz_ids_from_info(tmp_path) -> None:
    frames = []
    for k, s in enumerate(STRUCTS):
        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.info["id"] = f"f{k}"
        frames.append(atoms)
    write(tmp_path / "gen.extxyz", frames, format="extxyz")
    preds = load_predictions(tmp_path / "gen.extxyz")
    assert [p.id for p in preds] == ["f0", "f1", "f2"]
    for p, s in zip(preds, STRUCTS, strict=True):
        assert p.structure.composition == s.composition
        assert p.structure.lattice.abc == pytest.approx(s.lattice.abc)


def test_cdvae_csv_with_a_bad_row(tmp_path) -> None:
    rows = [{"material_id": f"m{k}", "cif": s.to(fmt="cif")} for k, s in enumerate(STRUCTS)]
    rows.append({"material_id": "m3", "cif": "not a cif"})
    pd.DataFrame(rows).to_csv(tmp_path / "gen.csv.gz", index=False)
    preds = load_predictions(tmp_path / "gen.csv.gz")
    assert [p.id for p in preds] == ["m0", "m1", "m2", "m3"]
    assert preds[3].structure is None and "unparseable" in preds[3].reason
    assert _same(preds[2].structure, STRUCTS[2])


def _sites(s) -> list[list[float]]:
    return np.array(sorted([site.specie.Z, *site.frac_coords] for site in s))


def test_saved_csv_round_trips_structures_and_failures(tmp_path) -> None:
    preds = [Prediction("a", STRUCTS[0]), Prediction("b", None, "rejected: zero atoms"),
             Prediction("c", STRUCTS[1]), Prediction("d", None)]  # fmt: skip
    save_predictions_csv(preds, tmp_path / "pred.csv.gz")
    with pytest.raises(FileExistsError):
        save_predictions_csv(preds, tmp_path / "pred.csv.gz")
    back = load_predictions(tmp_path / "pred.csv.gz")
    assert [p.id for p in back] == ["a", "b", "c", "d"]
    assert back[1].structure is None and back[1].reason == "rejected: zero atoms"
    assert back[3].structure is None and back[3].reason == "empty CIF"
    for got, want in ((back[0], STRUCTS[0]), (back[2], STRUCTS[1])):
        assert got.reason is None and got.structure.composition == want.composition
        assert got.structure.lattice.abc == pytest.approx(want.lattice.abc, abs=1e-6)
        assert _sites(got.structure) == pytest.approx(_sites(want), abs=1e-6)  # CIF regroups


def test_unknown_or_missing_paths_raise_clearly(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_predictions(tmp_path / "nope")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot read predictions"):
        load_predictions(tmp_path / "x.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"neither summary\.csv"):
        load_predictions(tmp_path / "empty")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "nocif.csv", index=False)
    with pytest.raises(ValueError, match="no 'cif' column"):
        load_predictions(tmp_path / "nocif.csv")
