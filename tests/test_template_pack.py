"""Template crystals bundled in a model file (issue 27, deliverable 1): round trip, decoding
without a data directory gives the same crystals as with it, and parts that do not belong
together are refused."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from tests.test_api import tiny_data, tiny_env  # noqa: F401  (fixtures)

from structrepdiff.bundled import model_path
from structrepdiff.cli.main import main
from structrepdiff.reconstruct.template_pack import pack_templates, unpack_templates
from structrepdiff.reconstruct.templates import TemplateSet, auto_templates, cached_templates
from structrepdiff.symmetry.analyze import cached_description, load_description


def test_a_pack_round_trips_through_a_weights_only_checkpoint(tiny_env, tmp_path):  # noqa: F811
    pack = pack_templates("perov_5", "val", symmetric=True)
    torch.save({"templates": pack}, tmp_path / "p.pt")
    again = torch.load(tmp_path / "p.pt", weights_only=True)["templates"]
    free = TemplateSet.load(unpack_templates(again, cache_dir=tmp_path / "c"))
    ref = cached_templates("perov_5", "val")
    assert free.ids == ref.ids and np.array_equal(free.lattice, ref.lattice)
    assert all(np.array_equal(a, b) for a, b in zip(free.frac, ref.frac, strict=True))
    wy = load_description(unpack_templates(again, True, tmp_path / "c"))
    assert [(i, w.sg, w.pattern) for i, _, w in wy] == [
        (i, w.sg, w.pattern) for i, _, w in cached_description("perov_5", "val")]
    assert unpack_templates({k: v for k, v in pack.items() if k != "wyckoff"}, True) is None


def _export(src, out, *extra) -> None:
    assert main(["export", "--model", str(src), "--out", str(out), *extra]) == 0


def _summary(folder) -> list[tuple]:
    with open(folder / "summary.csv") as fh:
        return [(r["id"], r["status"], r["loss"], r["space_group"], r["cif"] and
                 (folder / r["cif"]).read_text().split("_cell_length_a")[1][:200])
                for r in csv.DictReader(fh)]  # fmt: skip


def test_generate_gives_the_same_crystals_with_or_without_the_data(
    tiny_env,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    model = tmp_path / "packed.pt"
    _export("perov_5", model, "--templates")
    args = ["generate", "--model", str(model), "--num", "2", "--steps", "30",
            "--sample-steps", "10", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "with"), "--templates", "data"]) == 0
    assert "perov_5/val on Wyckoff parameters (" in capsys.readouterr().err
    monkeypatch.setenv("STRUCTREPDIFF_DATA", str(tmp_path / "no_data_here"))
    monkeypatch.setenv("STRUCTREPDIFF_CACHE", str(tmp_path / "fresh_cache"))
    assert main([*args, "--out", str(tmp_path / "without")]) == 0
    assert "bundled with the model" in capsys.readouterr().err
    assert _summary(tmp_path / "with") == _summary(tmp_path / "without")


def test_user_features_start_from_the_bundled_models_templates(
    tiny_env,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    folder = tmp_path / "models"
    folder.mkdir()
    _export("perov_5", folder / "perov_5.pt", "--templates")
    monkeypatch.setenv("STRUCTREPDIFF_MODELS", str(folder))
    monkeypatch.setenv("STRUCTREPDIFF_DATA", str(tmp_path / "no_data_here"))
    path, used = auto_templates("perov_5", None)  # `featurize --elements-from perov_5`
    assert path is not None and used == "perov_5/val, bundled with the model"
    assert len(TemplateSet.load(path)) == 4  # the tiny data's val split, packed at export
    path, used = auto_templates("perov_5", "train")  # a model trained on another split
    assert path is None and used.startswith("random starts: no perov_5 data")


def test_templates_of_another_dataset_are_refused(tiny_env, tmp_path):  # noqa: F811
    from structrepdiff.pipeline.checkpoint import CheckpointError, LoadedModel

    ckpt = torch.load(model_path("perov_5"), weights_only=True)
    pack = pack_templates("perov_5", "val")
    torch.save({**ckpt, "templates": {**pack, "dataset": "mp_20"}}, tmp_path / "forged.pt")
    with pytest.raises(CheckpointError, match="do not go together"):
        LoadedModel.load(tmp_path / "forged.pt")
