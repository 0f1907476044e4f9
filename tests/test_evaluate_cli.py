"""`structrepdiff evaluate` end to end on a handful of hand-made perovskites (no dataset)."""

from __future__ import annotations

import csv
import json

import pytest
from tests.conftest import PEROVSKITES, perovskite, write_perov_splits

from structrepdiff.cli.main import main


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_perov_splits(tmp_path_factory.mktemp("data"))


def run(args: list[str], data_dir, tmp_path) -> int:
    return main([*args, "--dataset", "perov_5", "--data-dir", str(data_dir), "--workers", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"])  # fmt: skip


def read_rows(path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def test_generation_scores_a_folder_of_cifs(tmp_path, data_dir) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    perovskite("Sr", "Ti", 3.9).to(filename=str(gen / "copy.cif"))  # a test crystal again
    perovskite("Na", "Cl", 3.9, anion="Cl").to(filename=str(gen / "nacl4.cif"))  # not neutral
    squeezed = perovskite("Sr", "Ti", 3.9)
    squeezed.translate_sites([1], [-0.45, -0.45, -0.45])  # Ti 0.2 Å from Sr
    squeezed.to(filename=str(gen / "squeezed.cif"))
    (gen / "broken.cif").write_text("not a cif")
    assert run(["evaluate", "generation", "--pred", str(gen)], data_dir, tmp_path) == 0
    m = json.loads((gen / "evaluation_generation" / "metrics.json").read_text())
    assert m["n_generated"] == 4 and m["n_with_structure"] == 3 and m["n_reference"] == 4
    assert m["struct_validity_pct"] == pytest.approx(50.0)  # copy and nacl4
    assert m["comp_validity_pct"] == pytest.approx(50.0)  # copy and squeezed
    assert m["validity_pct"] == pytest.approx(25.0)
    cov = m["coverage"]["cdvae"]
    assert cov["struct_cutoff"] == 0.2 and cov["comp_cutoff"] == 4.0
    assert 25.0 <= cov["cov_recall_pct"] < 100.0  # some reference is left uncovered
    assert m["properties"]["n_drawn"] == 1 and m["properties"]["complete"] is False
    assert m["novelty_split"] == "val" and m["versions"]["smact"]
    rows = read_rows(gen / "evaluation_generation" / "per_crystal.csv")
    assert "too close" in rows["squeezed"]["struct_reason"]
    assert rows["nacl4"]["comp_valid"] == "False" and rows["nacl4"]["comp_reason"]
    assert rows["broken"]["struct_reason"].startswith("unreadable CIF")
    assert rows["copy"]["spacegroup"] == "221" and rows["copy"]["in_property_sample"] == "True"
    assert float(rows["copy"]["struct_nn_dist"]) == 0.0 and rows["copy"]["cov_p_cdvae"] == "True"
    assert rows["broken"]["struct_nn_dist"] == "" and rows["broken"]["cov_p_paper"] == "False"
    assert sum(r["cov_p_cdvae"] == "True" for r in rows.values()) / 4 == pytest.approx(
        cov["cov_precision_pct"] / 100
    )
    # nothing is overwritten without --force; the reference fingerprints come from the cache
    assert run(["evaluate", "generation", "--pred", str(gen)], data_dir, tmp_path) == 2
    cached = list((tmp_path / "cache" / "eval").glob("reference_*.npz"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert run(["evaluate", "generation", "--pred", str(gen), "--force"], data_dir, tmp_path) == 0
    assert cached[0].stat().st_mtime_ns == stamp
    again = json.loads((gen / "evaluation_generation" / "metrics.json").read_text())
    assert again["coverage"] == m["coverage"] and again["n_reference"] == 4


def test_cached_reference_skips_parsing_the_split(tmp_path, data_dir, monkeypatch) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    perovskite("Sr", "Ti", 3.9).to(filename=str(gen / "copy.cif"))
    assert run(["evaluate", "generation", "--pred", str(gen), "--no-novelty"], data_dir,
               tmp_path) == 0  # fmt: skip
    first = json.loads((gen / "evaluation_generation" / "metrics.json").read_text())

    def no_parse(*args, **kwargs):
        raise AssertionError("the reference split was parsed although it is cached")

    monkeypatch.setattr("structrepdiff.evaluate.run.load_split", no_parse)
    assert run(["evaluate", "generation", "--pred", str(gen), "--no-novelty", "--force"],
               data_dir, tmp_path) == 0  # fmt: skip
    second = json.loads((gen / "evaluation_generation" / "metrics.json").read_text())
    assert second["coverage"] == first["coverage"] and second["n_reference"] == 4


def test_val_split_scored_as_generated_against_test(tmp_path, data_dir) -> None:
    out = tmp_path / "ref"
    args = ["evaluate", "generation", "--pred", str(data_dir / "perov_5" / "val.csv"),
            "--out", str(out), "--no-novelty"]  # fmt: skip
    assert run(args, data_dir, tmp_path) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["validity_pct"] == 100.0 and m["novelty_split"] is None
    assert m["coverage"]["paper"]["cov_recall_pct"] == 100.0  # 0.05 Å apart: same fingerprints
    assert m["uniqueness_pct"] == 100.0


def test_reconstruction_matches_by_id(tmp_path, data_dir) -> None:
    pred = tmp_path / "rec"
    pred.mkdir()
    perovskite("Sr", "Ti", 3.95).to(filename=str(pred / "test0.cif"))  # matches test0
    perovskite("Ba", "Zr", 4.2).to(filename=str(pred / "test2.cif"))  # test2 is KNbO3
    assert run(["evaluate", "reconstruction", "--pred", str(pred)], data_dir, tmp_path) == 0
    m = json.loads((pred / "evaluation_reconstruction" / "metrics.json").read_text())
    assert m["n_predictions"] == 2 and m["n_reference_without_prediction"] == 2
    assert m["match_rate_pct"] == 50.0 and m["match_rate_any_pct"] == 50.0
    assert m["rmse"] < 0.05
    rows = read_rows(pred / "evaluation_reconstruction" / "per_crystal.csv")
    assert rows["test0"]["matched"] == "True" and rows["test2"]["match_reason"] == "no match"
    perovskite("Sr", "Ti", 3.9).to(filename=str(pred / "elsewhere.cif"))
    args = ["evaluate", "reconstruction", "--pred", str(pred), "--force"]
    assert run(args, data_dir, tmp_path) == 2  # an id that is not in the split


def test_parallel_rows_equal_serial_rows() -> None:
    from structrepdiff.data.predictions import Prediction
    from structrepdiff.evaluate.suite import evaluate_rows

    preds = [Prediction(f"p{k}", perovskite(a, b, c)) for k, (a, b, c) in enumerate(PEROVSKITES)]
    preds.append(Prediction("none", None, "rejected: zero atoms"))
    serial = evaluate_rows(preds, workers=1, progress=False)
    parallel = evaluate_rows(preds, workers=2, progress=False)
    assert [r["id"] for r in parallel] == [p.id for p in preds]
    for a, b in zip(serial, parallel, strict=True):
        assert a["valid"] == b["valid"] and a["struct_reason"] == b["struct_reason"]
        assert (a["struct_fp"] is None) == (b["struct_fp"] is None)
        if a["struct_fp"] is not None:
            assert (a["struct_fp"] == b["struct_fp"]).all()
    assert parallel[-1]["struct_reason"] == "rejected: zero atoms"
