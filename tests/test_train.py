"""Training, checkpoints and sampling on a tiny feature file (no dataset needed)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from tests.conftest import random_skewed_structure

from structrepdiff.cli.main import main
from structrepdiff.descriptor.config import EADConfig
from structrepdiff.diffusion.denoisers import DenoiserConfig
from structrepdiff.features import FeatureSet, load_features, save_features
from structrepdiff.pipeline.checkpoint import CheckpointError, LoadedModel, load_checkpoint
from structrepdiff.pipeline.train import TrainConfig, split_rows, train
from structrepdiff.representation.encode import Representation, encode_structures
from structrepdiff.representation.scaler import Scaler

EAD = EADConfig(L=1, etas=(1.0, 20.0), rs=(0.0, 1.0, 2.0, 3.0), cutoff=4.0)
REP = Representation(EAD, (8, 11, 17, 26), n_max=6)
TINY = DenoiserConfig(kind="mlp", dim=1, hidden=32, depth=1, time_dim=16)


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    structs = [random_skewed_structure(seed) for seed in range(12)]
    path = tmp_path_factory.mktemp("f") / "R.npz"
    save_features(FeatureSet(encode_structures(structs, REP), [f"c{k}" for k in range(12)], REP),
                  path)  # fmt: skip
    return path


def config(out, features, **kw) -> TrainConfig:
    base = dict(out=out, features=features, denoiser=TINY, T=20, lr=1e-3, batch_size=8,
                steps=6, eval_every=2, checkpoint_every=3, progress=False)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, features) -> None:
    straight = train(config(tmp_path / "a", features))
    train(config(tmp_path / "b", features, steps=3))
    resumed = train(config(tmp_path / "b", features, steps=6, resume=True))
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    by_step = {m["step"]: m for m in b["metrics"]}  # b also evaluated at its stop, step 3
    assert [m["step"] for m in b["metrics"]] == [2, 3, 4, 6]
    for m in a["metrics"]:
        assert m["val_loss"] == by_step[m["step"]]["val_loss"]
        assert m["train_loss"] == by_step[m["step"]]["train_loss"]
    assert (tmp_path / "b" / "metrics.jsonl").read_text().count("\n") == 4


def test_a_moved_run_folder_resumes_with_other_bookkeeping(tmp_path, features) -> None:
    import shutil

    straight = train(config(tmp_path / "a", features))
    train(config(tmp_path / "b", features, steps=3))
    shutil.copytree(tmp_path / "b", tmp_path / "moved")
    resumed = train(config(tmp_path / "moved", features, steps=6, resume=True, eval_every=5))
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert all(torch.equal(t, b["ema"][k]) for k, t in a["ema"].items())


def test_checkpoint_is_self_contained_and_guarded(tmp_path, features) -> None:
    s = train(config(tmp_path / "run", features))
    ckpt = torch.load(s.checkpoint, weights_only=True)
    for key in ("representation", "scaler", "denoiser", "diffusion", "train", "step", "ema"):
        assert key in ckpt
    assert ckpt["train"]["n_train"] + len(ckpt["train"]["ids_held_out"]) == 12
    model = LoadedModel.load(s.checkpoint)
    assert model.rep == REP and model.denoiser_config.dim == REP.layout.dim
    with pytest.raises(FileExistsError, match="`resume`=True"):
        train(config(tmp_path / "run", features))
    with pytest.raises(ValueError, match="other settings"):
        train(config(tmp_path / "run", features, lr=5e-4, resume=True))
    foreign, truncated = tmp_path / "foreign.pt", tmp_path / "truncated.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    truncated.write_bytes(s.checkpoint.read_bytes()[:200])
    for bad in (foreign, truncated):
        with pytest.raises(CheckpointError):
            load_checkpoint(bad)


def test_split_rows_is_seeded_and_disjoint() -> None:
    tr, ho = split_rows(100, 0.05, 3)
    assert len(ho) == 5 and not set(tr) & set(ho) and len(tr) + len(ho) == 100
    assert np.array_equal(split_rows(100, 0.05, 3)[1], ho)
    with pytest.raises(ValueError):
        split_rows(1, 0.05, 0)


def test_cli_train_then_sample_is_reproducible(tmp_path, features, capsys) -> None:
    run = tmp_path / "run"
    args = ["train", "--features", str(features), "--out", str(run), "--hidden", "32",
            "--depth", "1", "--T", "20", "--steps", "4", "--batch-size", "8",
            "--eval-every", "2", "--checkpoint-every", "2", "--no-progress"]  # fmt: skip
    assert main(args) == 0 and "trained to step 4" in capsys.readouterr().out
    assert main(args) == 2  # exists: needs --resume or --force
    for sampler in ("ddim", "ddpm"):
        outs = []
        for name in ("x", "y"):
            out = tmp_path / f"{sampler}_{name}.npz"
            assert main(["sample", "--model", str(run / "checkpoint.pt"), "--num", "5",
                         "--out", str(out), "--sampler", sampler, "--sample-steps", "10",
                         "--no-progress"]) == 0  # fmt: skip
            outs.append(load_features(out))
        assert outs[0].R.shape == (5, REP.layout.dim) and outs[0].rep == REP
        assert np.array_equal(outs[0].R, outs[1].R)  # same seed, same vectors
        assert np.isfinite(outs[0].R).all()
    assert (
        main(["sample", "--model", str(features), "--num", "2", "--out", str(tmp_path / "z.npz")])
        == 2
    )  # a feature file is not a checkpoint


def test_cli_generate_writes_every_sample_once_and_resumes(tmp_path, features, capsys) -> None:
    import csv

    from ase.io import read

    s = train(config(tmp_path / "run", features))
    out = tmp_path / "gen"
    args = ["generate", "--model", str(s.checkpoint), "--num", "4", "--out", str(out),
            "--sample-steps", "10", "--trials", "1", "--hops", "1", "--steps", "5",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["id"] for r in rows) == [f"sample_{k:06d}" for k in range(4)]
    assert all(r["status"] in ("converged", "not_converged", "rejected") for r in rows)
    assert all(r["reason"] for r in rows if r["status"] == "rejected")
    frames = read(out / "generated.extxyz", index=":") if any(r["cif"] for r in rows) else []
    assert len(frames) == sum(bool(r["cif"]) for r in rows)
    samples = (out / "samples.npz").read_bytes()
    assert main(args) == 0  # resume: nothing redrawn, nothing redone
    assert (out / "samples.npz").read_bytes() == samples
    assert "4 already done before this run)" in capsys.readouterr().out
    assert main([*args[:-1], "--seed", "3", "--no-progress"]) == 2  # other settings refused


def test_cli_generate_relax_writes_a_relaxation_row_per_sample(tmp_path, features, monkeypatch):
    import csv

    from ase.calculators.emt import EMT

    from structrepdiff.relax import potential

    monkeypatch.setattr(potential, "load_calculator", lambda name, device="cpu": EMT())
    s = train(config(tmp_path / "run", features))
    out = tmp_path / "gen"
    assert main(["generate", "--model", str(s.checkpoint), "--num", "3", "--out", str(out),
                 "--sample-steps", "5", "--trials", "1", "--hops", "1", "--steps", "5",
                 "--relax", "--relax-steps", "5", "--no-progress"]) == 0  # fmt: skip
    with open(out / "relaxed" / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["id"] for r in rows) == [f"sample_{k:06d}" for k in range(3)]
    assert all(r["cif"] or r["reason"] for r in rows)  # a crystal or a reason, never silence


def test_write_extxyz_carries_id_status_and_loss(tmp_path) -> None:
    from ase.io import read
    from pymatgen.core import Lattice, Structure

    from structrepdiff.pipeline.generate import write_extxyz

    Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(tmp_path / "a.cif")
    )
    (tmp_path / "summary.csv").write_text(
        "id,status,loss,converged,steps,seconds,reason,cif\n"
        "a,converged,1.0e-04,1,10,0.1,,a.cif\n"
        "b,rejected,,,,,zero atoms,\n"
    )
    assert write_extxyz(tmp_path) == 1
    (frame,) = read(tmp_path / "generated.extxyz", index=":")
    assert frame.info["id"] == "a" and frame.info["status"] == "converged"
    assert frame.info["loss"] == 1e-4 and frame.get_chemical_formula() == "ClCs"


def test_blockwise_scaler_is_stored_and_scales_composition_to_unit_range(tmp_path, features):
    s = train(config(tmp_path / "run", features, scaler="blockwise"))
    model = LoadedModel.load(s.checkpoint)
    assert model.scaler.kind == "blockwise"
    sl = REP.layout.slices["composition"]
    rows = split_rows(12, 0.05, 0)[0]  # the rows the scaler was fitted on
    want = Scaler.fit(load_features(features).R[rows], minmax_blocks=[sl])
    np.testing.assert_allclose(model.scaler.mean, want.mean)
    np.testing.assert_allclose(model.scaler.std, want.std)
    assert len(set(model.scaler.std[sl].tolist())) == 1  # one range for the whole block
    assert model.ckpt["train"]["config"]["scaler"] == "blockwise"
    with pytest.raises(ValueError, match="scaler must be one of"):
        config(tmp_path / "x", features, scaler="minmax")


def test_export_samples_like_the_original_and_cannot_resume(tmp_path, features) -> None:
    skip = replace(TINY, gaussian_skip=True)  # its fitted Gaussian must stay float32
    full = train(config(tmp_path / "run", features, denoiser=skip)).checkpoint
    f32, f16 = tmp_path / "f32.pt", tmp_path / "f16.pt"
    assert main(["export", "--model", str(full), "--out", str(f32), "--dtype", "float32"]) == 0
    assert main(["export", "--model", str(full), "--out", str(f16)]) == 0
    assert main(["export", "--model", str(full), "--out", str(f16)]) == 2  # needs --force
    ck = torch.load(f16, weights_only=True)
    assert not {"model", "optimizer", "rng"} & set(ck) and ck["exported"]["dtype"] == "float16"
    halves = {k for k, v in ck["ema"].items() if v.dtype == torch.float16}
    assert halves == {k for k in ck["ema"] if k.startswith("inner.")}  # the MLP's parameters
    for buffer in ("mu", "U", "lam", "alphas_cumprod"):
        assert ck["ema"][buffer].dtype == torch.float32
    assert f16.stat().st_size < full.stat().st_size / 2
    R = {}
    for name, path in (("full", full), ("f32", f32), ("f16", f16)):
        out = tmp_path / f"{name}.npz"
        assert main(["sample", "--model", str(path), "--num", "5", "--out", str(out),
                     "--sample-steps", "10", "--no-progress"]) == 0  # fmt: skip
        R[name] = load_features(out).R
    assert np.array_equal(R["full"], R["f32"])  # same weights, same seed: same vectors
    spread = R["full"].std(axis=0).max()
    assert 0 < np.abs(R["f16"] - R["full"]).max() < 1e-3 * spread  # rounded, barely moved
    with pytest.raises(CheckpointError, match="EMA weights only"):
        LoadedModel(load_checkpoint(f16), use_ema=False)
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "checkpoint.pt").write_bytes(f16.read_bytes())
    with pytest.raises(ValueError, match="cannot be resumed"):
        train(config(tmp_path / "again", features, resume=True))


@pytest.mark.parametrize("dataset", ["perov_5", "carbon_24", "mp_20"])
def test_bundled_models_load_and_decode(dataset: str) -> None:
    from pathlib import Path

    from structrepdiff.bundled import model_path
    from structrepdiff.data.registry import get_dataset
    from structrepdiff.pipeline.sample import sample_vectors
    from structrepdiff.representation.decode import decode

    path = model_path(dataset)
    assert path.parent == Path(__file__).resolve().parents[1] / "src" / "structrepdiff" / "models"
    model = LoadedModel.load(path)  # weights_only load of the committed file
    assert model.ckpt["exported"]["dtype"] == "float16"
    assert model.ckpt["train"]["config"]["split"] == "val"
    info = get_dataset(dataset)
    assert tuple(model.rep.atomic_numbers) == tuple(info.atomic_numbers)
    assert model.rep.n_max == info.n_max
    R = sample_vectors(model, 4, steps=10, seed=0)
    assert R.shape == (4, model.rep.layout.dim) and np.isfinite(R).all()
    ok = [d for d in decode(R, model.rep) if d.ok]
    assert ok and all(1 <= len(d.numbers) <= info.n_max for d in ok)
    if dataset == "perov_5":
        assert len(ok) == 4 and all(len(d.numbers) == 5 for d in ok)  # every Perov-5 has 5


def test_sampled_vectors_name_the_training_data_for_template_starts(tmp_path, monkeypatch):
    """`sample` records the model's training dataset and split, so `reconstruct --templates
    auto` on its output asks for that split's templates (before: random starts, ~10× slower)."""
    import structrepdiff.reconstruct.templates as tpl
    from structrepdiff.features import load_features

    out = tmp_path / "s.npz"
    assert main(["sample", "--model", "perov_5", "--num", "2", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    src = load_features(out).source
    assert (src["dataset"], src["training_split"]) == ("perov_5", "val")
    asked = []
    monkeypatch.setattr(tpl, "auto_templates", lambda ds, split=None, data_dir=None, **kw:
                        asked.append((ds, split)) or (None, "random starts: stand-in"))  # fmt: skip
    assert main(["reconstruct", "--representations", str(out), "--out", str(tmp_path / "r"),
                 "--trials", "1", "--hops", "1", "--steps", "5", "--no-progress"]) == 0  # fmt: skip
    assert asked == [("perov_5", "val")]
