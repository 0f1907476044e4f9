"""Tests of `structrepdiff featurize` end to end, and of the feature-file format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from structrepdiff.cli.main import build_parser, main
from structrepdiff.data.io import load_split, split_path
from structrepdiff.data.paths import DataNotFoundError
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.features import load_features
from structrepdiff.representation.encode import Representation, encode_structures
from structrepdiff.representation.layout import Layout

PEROV = get_dataset("perov_5")
SMALL = get_preset("small")
SMALL_LAYOUT = Layout(n_ead=SMALL.n_features, n_elements=len(PEROV.atomic_numbers))
SITES = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
GOOD = {"BaTiO3": ("Ba", "Ti", 4.0), "CaZrO3": ("Ca", "Zr", 4.1), "SrTiO3": ("Sr", "Ti", 3.9)}


@pytest.fixture
def cif_dir(tmp_path) -> Path:
    """3 good 5-atom cubic perovskites and 1 broken CIF."""
    d = tmp_path / "cifs"
    d.mkdir()
    for stem, (a_site, b_site, a) in GOOD.items():
        s = Structure(Lattice.cubic(a), [a_site, b_site, "O", "O", "O"], SITES)
        (d / f"{stem}.cif").write_text(s.to(fmt="cif"))
    (d / "broken.cif").write_text("data_broken\n_cell_length_a oops\nnot a cif\n")
    return d


def _cif_args(cif_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "featurize",
        "--cif",
        str(cif_dir),
        "--elements-from",
        "perov_5",
        "--preset",
        "small",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_featurize_cif_folder(cif_dir, tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert main(_cif_args(cif_dir, out)) == 0
    printed = capsys.readouterr().out
    assert "featurized 3 crystals" in printed
    assert "skipped 1" in printed
    assert "unparseable CIF" in printed

    with np.load(out, allow_pickle=False) as f:
        assert f["R"].shape == (3, SMALL_LAYOUT.dim)
        assert f["R"].dtype == np.float64
        assert np.isfinite(f["R"]).all()
        assert f["ids"].tolist() == sorted(GOOD)
        assert f["block_names"].tolist() == SMALL_LAYOUT.to_dict()["names"]
        assert f["block_sizes"].tolist() == SMALL_LAYOUT.to_dict()["sizes"]
        assert f["elements"].tolist() == PEROV.elements
        assert f["atomic_numbers"].tolist() == list(PEROV.atomic_numbers)
        assert f["skipped_ids"].tolist() == ["broken"]
        assert f["skipped_reasons"][0].startswith("unparseable CIF")
        meta = json.loads(str(f["meta"]))
        R_raw = f["R"].copy()
    assert meta["representation"]["ead"]["cutoff"] == SMALL.cutoff
    assert meta["source"]["elements_from"] == "perov_5"

    fs = load_features(out)
    np.testing.assert_array_equal(fs.R, R_raw)
    assert fs.ids == sorted(GOOD)
    assert fs.rep == Representation(SMALL, PEROV.atomic_numbers, PEROV.n_max)
    assert [s.id for s in fs.skipped] == ["broken"]
    # the composition and lattice blocks say what was put in
    comp = fs.block("composition")
    sr, ti, o = (PEROV.atomic_numbers.index(z) for z in (38, 22, 8))
    row = fs.ids.index("SrTiO3")
    assert comp[row, sr] == pytest.approx(0.2) and comp[row, ti] == pytest.approx(0.2)
    assert comp[row, o] == pytest.approx(0.6) and comp[row].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(fs.block("lattice")[row], [3.9, 3.9, 3.9, 90, 90, 90], atol=1e-9)
    np.testing.assert_allclose(fs.block("n_atoms")[:, 0], 1.0)


def test_featurize_refuses_to_overwrite_without_force(cif_dir, tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert main(_cif_args(cif_dir, out)) == 0
    before, mtime = out.read_bytes(), out.stat().st_mtime_ns
    capsys.readouterr()

    assert main(_cif_args(cif_dir, out)) != 0
    err = capsys.readouterr().err
    assert "error:" in err and "--force" in err and "Traceback" not in err
    assert out.read_bytes() == before and out.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["x.npz"]  # no temp files

    assert main(_cif_args(cif_dir, out, "--force")) == 0
    assert load_features(out).ids == sorted(GOOD)


def test_featurize_real_split_matches_library(tmp_path, capsys):
    try:
        data_dir = split_path(None, "perov_5", "val").parent.parent
    except (DataNotFoundError, FileNotFoundError) as exc:
        pytest.skip(f"real perov_5 val data not available: {exc}")
    out = tmp_path / "val.npz"
    code = main(
        [
            "featurize",
            "--dataset",
            "perov_5",
            "--split",
            "val",
            "--limit",
            "4",
            "--preset",
            "small",
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    assert "featurized 4 crystals" in capsys.readouterr().out
    fs = load_features(out)
    loaded = load_split("perov_5", "val", data_dir=data_dir, limit=4)
    assert fs.R.shape == (4, SMALL_LAYOUT.dim)
    assert fs.ids == loaded.ids
    expected = encode_structures(
        loaded.structures, Representation(SMALL, PEROV.atomic_numbers, PEROV.n_max)
    )
    np.testing.assert_allclose(fs.R, expected, rtol=1e-12, atol=1e-15)
    assert fs.source["dataset"] == "perov_5" and fs.source["split"] == "val"


def test_featurize_default_preset_is_the_models_small_preset():
    # one default preset for featurize and train (issue 15): the bundled models' `small`
    args = build_parser().parse_args(
        ["featurize", "--dataset", "mp_20", "--split", "val", "--out", "x.npz"]
    )
    assert args.preset == "small"
    assert get_preset(args.preset).cutoff == 6.0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cif", "CIFDIR"], "--elements-from"),
        (["--dataset", "perov_5"], "--split"),
        (
            [
                "--dataset",
                "perov_5",
                "--split",
                "val",
                "--cif",
                "CIFDIR",
                "--elements-from",
                "perov_5",
            ],
            "either",
        ),
        ([], "either"),
    ],
    ids=["cif-without-elements", "dataset-without-split", "dataset-and-cif", "no-input"],
)
def test_featurize_argument_errors(args, expected, cif_dir, tmp_path, capsys):
    out = tmp_path / "x.npz"
    argv = [
        "featurize",
        *[str(cif_dir) if a == "CIFDIR" else a for a in args],
        "--out",
        str(out),
        "--no-progress",
        "--preset",
        "small",
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert code != 0
    assert captured.err.startswith("error:")
    assert expected in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()


def test_featurize_missing_cif_path_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "x.npz"
    code = main(_cif_args(tmp_path / "nowhere", out))
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error:") and "nowhere" in err
    assert not out.exists()


# --------------------------------------------------------------------------- load_features errors


def test_load_features_text_file(tmp_path):
    p = tmp_path / "not_features.npz"
    p.write_text("hello, I am not an npz file\n")
    with pytest.raises(ValueError, match=re.escape(str(p))):
        load_features(p)


def test_load_features_npz_without_expected_keys(tmp_path):
    p = tmp_path / "other.npz"
    np.savez(p, R=np.zeros((2, 3)), ids=np.array(["a", "b"]))
    with pytest.raises(ValueError, match=re.escape(str(p))):
        load_features(p)


def test_load_features_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("missing.npz")):
        load_features(tmp_path / "missing.npz")


def test_load_features_npy_file(tmp_path):
    p = tmp_path / "array.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ValueError, match=re.escape(str(p))):
        load_features(p)


def test_load_features_meta_not_an_object(tmp_path):
    p = tmp_path / "weird.npz"
    np.savez(p, meta=np.array("[1, 2]"))
    with pytest.raises(ValueError, match=re.escape(str(p))):
        load_features(p)


def test_featurize_saves_a_scaler_fitted_on_the_rows(cif_dir, tmp_path):
    from structrepdiff.representation.scaler import Scaler

    out, scaler_path = tmp_path / "x.npz", tmp_path / "scaler.npz"
    assert main(_cif_args(cif_dir, out, "--save-scaler", str(scaler_path))) == 0
    R = load_features(out).R
    scaler = Scaler.load(scaler_path)
    np.testing.assert_allclose(scaler.mean, R.mean(axis=0))
    z = scaler.transform(R)
    varying = R.std(axis=0) > 1e-12
    np.testing.assert_allclose(z[:, varying].std(axis=0), 1.0, rtol=1e-9)
    np.testing.assert_allclose(scaler.inverse(z), R, rtol=1e-12, atol=1e-12)
    # an existing scaler file is protected like the features file
    assert main(_cif_args(cif_dir, tmp_path / "y.npz", "--save-scaler", str(scaler_path))) != 0
    assert not (tmp_path / "y.npz").exists()


def test_interrupted_featurize_resumes_without_redoing_rows(cif_dir, tmp_path, monkeypatch):
    import structrepdiff.pipeline.featurize as fz

    out = tmp_path / "x.npz"
    args = [*_cif_args(cif_dir, out), "--batch-size", "1"]
    real = fz.encode_batch
    calls: list[int] = []

    def crash_on_third(structures, rep, dtype, device="cpu"):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(structures))
        return real(structures, rep, dtype, device)

    monkeypatch.setattr(fz, "CHECKPOINT_SECONDS", -1.0)  # checkpoint after every batch
    monkeypatch.setattr(fz, "encode_batch", crash_on_third)
    assert main(args) == 130  # Ctrl-C: a quiet stop that says what was saved
    partial = tmp_path / "x.npz.partial"
    assert not out.exists() and partial.exists()
    assert len(load_features(partial).ids) == 2

    calls.clear()

    def count(s, r, d, dev="cpu"):
        calls.append(len(s))
        return real(s, r, d, dev)

    monkeypatch.setattr(fz, "encode_batch", count)
    assert main(args) == 0
    assert calls == [1]  # only the third crystal was encoded again
    assert not partial.exists()
    resumed = load_features(out)
    assert main([*_cif_args(cif_dir, tmp_path / "fresh.npz")]) == 0
    fresh = load_features(tmp_path / "fresh.npz")
    assert resumed.ids == fresh.ids
    np.testing.assert_allclose(resumed.R, fresh.R, rtol=1e-12)
