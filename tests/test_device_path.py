"""`--device` for featurize, reconstruct, generate and relax (issue #16): `cpu` given equals the
default, a missing device is one clear error, and (where a GPU exists) CUDA agrees with the CPU.
Also the plateau early stop of the descent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tests.test_reconstruct import EAD, REP, _feature_file, _summary, crystals, targets_of

from structrepdiff.cli.main import main
from structrepdiff.features import load_features
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import reconstruct_batch
from structrepdiff.representation.encode import encode_structures

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def _rows(out) -> list[tuple[str, str, str, str]]:
    return [(r["id"], r["status"], r["loss"], r["steps"]) for r in _summary(out)]


def _reconstruct(tmp_path, name: str, *extra: str) -> list:
    structs = crystals()
    npz = tmp_path / "R.npz"
    if not npz.exists():
        _feature_file(tmp_path, encode_structures(list(structs.values()), REP), list(structs))
    out = tmp_path / name
    args = [
        "reconstruct",
        "--representations",
        str(npz),
        "--out",
        str(out),
        "--trials",
        "2",
        "--hops",
        "1",
        "--steps",
        "60",
        "--templates",
        "none",
        "--no-progress",
        *extra,
    ]
    assert main(args) == 0
    return _rows(out), {p.name: p.read_text() for p in out.glob("*.cif")}


def test_reconstruct_device_cpu_equals_the_default(tmp_path) -> None:
    rows, cifs = _reconstruct(tmp_path, "default")
    rows_cpu, cifs_cpu = _reconstruct(tmp_path, "cpu", "--device", "cpu")
    assert rows == rows_cpu and len(rows) == 3
    assert cifs == cifs_cpu and len(cifs) == 3


def test_featurize_device_cpu_equals_the_default(tmp_path) -> None:
    paths = []
    for k, cif in enumerate(crystals().values()):
        paths.append(tmp_path / f"c{k}.cif")
        cif.to(filename=str(paths[-1]))
    for name, extra in (("a.npz", []), ("b.npz", ["--device", "cpu"])):
        args = ["featurize", "--cif", *map(str, paths), "--elements-from", "mp_20",
                "--out", str(tmp_path / name), "--no-progress", *extra]  # fmt: skip
        assert main(args) == 0
    a, b = load_features(tmp_path / "a.npz"), load_features(tmp_path / "b.npz")
    np.testing.assert_array_equal(a.R, b.R)
    assert a.ids == b.ids and len(a.ids) == 3
    a.source.pop("out"), b.source.pop("out")
    assert a.source == b.source  # the device is not among the recorded settings


@pytest.mark.parametrize("command", ["reconstruct", "featurize", "relax"])
def test_a_device_this_build_lacks_is_one_clear_error(tmp_path, capsys, command) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = {"reconstruct": ["--representations", str(tmp_path / "R.npz")],
            "featurize": ["--dataset", "perov_5", "--split", "test"],
            "relax": ["--pred", str(tmp_path)]}[command]  # fmt: skip
    if command == "reconstruct":
        _feature_file(tmp_path, encode_structures([crystals()["CsCl"]], REP), ["x"])
    out = tmp_path / ("o.npz" if command == "featurize" else "o")
    code = main([command, *args, "--out", str(out), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code != 0 and "no usable CUDA" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "summary.csv").exists() and not (tmp_path / "o.npz").exists()


@CUDA
def test_reconstruction_on_cuda_agrees_with_the_cpu() -> None:
    t = targets_of(crystals())
    cfg = ReconstructConfig(trials=2, hops=1, steps=200, dtype="float64", seed=0)
    cpu, gpu = reconstruct_batch(t, EAD, cfg), reconstruct_batch(t, EAD, cfg, device="cuda")
    for a, b in zip(cpu, gpu, strict=True):
        assert a.converged == b.converged
        assert abs(a.loss - b.loss) < 1e-6 + 1e-3 * a.loss


@CUDA
def test_featurization_on_cuda_agrees_with_the_cpu() -> None:
    s = list(crystals().values())
    cpu = encode_structures(s, REP)
    gpu = encode_structures(s, REP, device="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-10, atol=1e-12)


def test_plateau_rule_stops_a_stuck_crystal_and_keeps_an_easy_one() -> None:
    easy, hard = targets_of({"CsCl": crystals()["CsCl"]})[0], targets_of(crystals())[0]
    hard = dataclasses.replace(  # twice rock salt's EAD: no arrangement reaches it
        hard, id="unreachable", ead_max=2 * hard.ead_max, ead_min=2 * hard.ead_min
    )
    full = ReconstructConfig(trials=1, hops=1, steps=300, seed=1, patience=0)
    rule = dataclasses.replace(full, patience=50, plateau_tol=0.01, plateau_floor=0.03)
    (e0, h0), (e1, h1) = (reconstruct_batch([easy, hard], EAD, c) for c in (full, rule))
    assert h0.steps == 300 and 50 < h1.steps < 300  # stuck: stopped after the plateau
    assert h1.loss >= h0.loss and h1.loss < 1.1 * h0.loss  # and it had nearly got there
    assert e1.converged and e1.steps == e0.steps  # a converging crystal is not cut short
    floor = dataclasses.replace(rule, plateau_floor=10.0)  # above the stuck loss: no stop
    assert reconstruct_batch([hard], EAD, floor)[0].steps == 300


def test_the_gpu_code_path_run_on_the_cpu_gives_the_same_crystals(monkeypatch) -> None:
    """A GPU runs the batched neighbour list and the large EAD chunks; the same code on this
    CPU must reconstruct the same crystals (to float32 rounding) as the CPU defaults."""
    import structrepdiff.descriptor.ead as ead
    import structrepdiff.geometry.neighbors as nb

    t = targets_of(crystals())
    cfg = ReconstructConfig(trials=2, hops=1, steps=200, seed=0)
    cpu = reconstruct_batch(t, EAD, cfg)
    monkeypatch.setattr(nb, "_alike", lambda counts, reach: True)
    monkeypatch.setattr(ead, "DEFAULT_CHUNK_ELEMENTS", ead.GPU_CHUNK_ELEMENTS)
    gpu_like = reconstruct_batch(t, EAD, cfg)
    for a, b in zip(cpu, gpu_like, strict=True):
        assert a.converged and b.converged, (a.id, a.loss, b.loss)
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-3)
