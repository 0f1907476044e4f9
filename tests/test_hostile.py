"""Hostile input and faults (issue #14): each case reproduced first, then its one-line reason."""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from tests.conftest import random_skewed_structure
from tests.test_train import REP, config

from structrepdiff.cli.main import main
from structrepdiff.features import FeatureSet, load_features, save_features
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.geometry.neighbors import (
    MAX_PAIRS_PER_ATOM,
    expected_pairs_per_atom,
    neighbor_list,
)
from structrepdiff.pipeline.train import train
from structrepdiff.representation.encode import encode_structures

SITES = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def _perovskite(a: float = 4.0) -> Structure:
    return Structure(Lattice.cubic(a), ["Sr", "Ti", "O", "O", "O"], SITES)


def _tiny_cell() -> Structure:
    """A valid 1-atom cubic cell, a = 0.15 Å (0.003 Å³): above the degenerate-volume check."""
    return Structure(Lattice.cubic(0.15), ["O"], [[0, 0, 0]])


def _featurize_args(folder: Path, out: Path) -> list[str]:
    return ["featurize", "--cif", str(folder), "--elements-from", "perov_5", "--preset", "small",
            "--out", str(out), "--no-progress"]  # fmt: skip


def test_pair_estimate_matches_a_hand_count():
    # simple cubic, a = 1 Å, cutoff 1.5 Å: 6 + 12 neighbours (1 and √2 Å); the estimate
    # (4/3)π·1.5³ ≈ 14.1 counts the sphere's volume, same order as the exact 18
    c = Crystals.from_structures([Structure(Lattice.cubic(1.0), ["O"], [[0, 0, 0]])],
                                 dtype=torch.float64)  # fmt: skip
    assert len(neighbor_list(c, 1.5)) == 18
    assert expected_pairs_per_atom(1, 1.0, 1.5) == pytest.approx(4 / 3 * 3.14159265 * 3.375)


def test_tiny_cell_is_refused_before_allocating():
    c = Crystals.from_structures([_tiny_cell()], dtype=torch.float64)
    with pytest.raises(ValueError, match="too dense"):
        neighbor_list(c, 20.0)
    assert expected_pairs_per_atom(1, 0.15**3, 20.0) > 100 * MAX_PAIRS_PER_ATOM


def test_tiny_cell_is_skipped_and_good_files_kept(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "good.cif").write_text(_perovskite().to(fmt="cif"))
    (folder / "tiny.cif").write_text(_tiny_cell().to(fmt="cif"))
    out = tmp_path / "x.npz"
    assert main(_featurize_args(folder, out)) == 0
    fs = load_features(out)
    assert fs.ids == ["good"]
    reasons = {s.id: s.reason for s in fs.skipped}
    assert "too dense" in reasons["tiny"]


MEMORY_SCRIPT = """
import resource, sys
from structrepdiff.cli.main import main
rc = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
sys.exit(rc)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_featurizing_the_tiny_cell_stays_under_1_gb(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "tiny.cif").write_text(_tiny_cell().to(fmt="cif"))
    (folder / "good.cif").write_text(_perovskite().to(fmt="cif"))
    args = _featurize_args(folder, tmp_path / "x.npz")
    run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, *args], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    peak_kib = int(run.stdout.strip().splitlines()[-1])
    assert peak_kib < 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert load_features(tmp_path / "x.npz").ids == ["good"]


# --- train --resume (cases 2, 5, 16) ------------------------------------------------------


@pytest.fixture
def own_features(tmp_path):
    """A tiny feature file of this test's own (some tests overwrite it)."""
    structs = [random_skewed_structure(seed) for seed in range(12)]
    path = tmp_path / "R.npz"
    save_features(FeatureSet(encode_structures(structs, REP), [f"c{k}" for k in range(12)], REP),
                  path)  # fmt: skip
    return path


def test_resume_refuses_changed_training_data(tmp_path, own_features):
    train(config(tmp_path / "run", own_features, steps=3))
    fs = load_features(own_features)
    save_features(FeatureSet(fs.R[::-1].copy(), fs.ids, fs.rep), own_features, force=True)
    with pytest.raises(ValueError, match="training features changed"):
        train(config(tmp_path / "run", own_features, steps=6, resume=True))


def test_resume_after_a_crash_logs_each_step_once_with_cumulative_time(tmp_path, own_features):
    run = tmp_path / "run"
    train(config(run, own_features, steps=3))  # evaluations at 2 and 3, checkpoint at 3
    log = run / "metrics.jsonl"
    with open(log, "a") as fh:  # logged after the last checkpoint, then the process died
        fh.write(json.dumps({"step": 4, "train_loss": 0.0, "val_loss": 0.0, "seconds": 9.9}) + "\n")
    first = [json.loads(line) for line in log.read_text().splitlines()][1]["seconds"]
    train(config(run, own_features, steps=6, resume=True))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3, 4, 6]
    assert rows[2]["seconds"] != 9.9 and rows[2]["seconds"] >= first
    seconds = [r["seconds"] for r in rows]
    assert seconds == sorted(seconds)


def test_resume_gaps_are_errors_that_say_why(tmp_path, own_features):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(config(tmp_path / "none", own_features, resume=True))
    train(config(tmp_path / "run", own_features, steps=6))
    with pytest.raises(ValueError, match="below the checkpoint's step 6"):
        train(config(tmp_path / "run", own_features, steps=3, resume=True))
    with pytest.raises(ValueError, match=r"lr: 0\.001 then, 0\.0005 now"):
        train(config(tmp_path / "run", own_features, steps=8, lr=5e-4, resume=True))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_atomic_writes_get_the_mode_open_would_give(tmp_path):
    from structrepdiff.data.atomic import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", lambda p: p.write_text("x"))
        with open(tmp_path / "b.txt", "w") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


# --- duplicate ids (case 3) ---------------------------------------------------------------


def test_a_repeated_id_is_refused_with_a_reason_at_parse():
    from structrepdiff.data.io import parse_rows
    from structrepdiff.data.registry import get_dataset

    info = get_dataset("perov_5")
    cif = _perovskite().to(fmt="cif")
    loaded = parse_rows([("x", cif), ("x", _perovskite(4.2).to(fmt="cif")), ("y", cif)],
                        info.atomic_numbers, info.n_max)  # fmt: skip
    assert loaded.ids == ["x", "y"] and len(loaded.structures) == 2
    assert loaded.structures[0].lattice.a == pytest.approx(4.0)  # the first is kept
    assert [(s.id, s.reason) for s in loaded.skipped] == [
        ("x", "duplicate id: an earlier row has the same id")
    ]


def test_reconstruct_never_overwrites_a_crystal_within_a_run(tmp_path):
    from tests.test_reconstruct import REP as REC_REP
    from tests.test_reconstruct import crystals

    structs = list(crystals().values())[:2]
    R = encode_structures(structs * 2, REC_REP)
    ids = ["dup", "dup", "a/b", "a_b"]  # a repeat, and two ids with one sanitised file name
    npz, out = tmp_path / "R.npz", tmp_path / "rec"
    save_features(FeatureSet(R, ids, REC_REP), npz)
    args = ["reconstruct", "--representations", str(npz), "--out", str(out), "--trials", "1",
            "--hops", "1", "--steps", "20", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["id"] for r in rows) == sorted(["dup", "dup~2", "a/b", "a_b"])
    files = [r["cif"] for r in rows]
    assert all(files) and len(set(files)) == 4
    assert all((out / f).is_file() for f in files)


# --- one-line errors instead of tracebacks (cases 4, 7, 8) ----------------------------------


@pytest.fixture
def model(tmp_path, own_features):
    return train(config(tmp_path / "run", own_features, steps=2)).checkpoint


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1
    return err


def _sample(model_path, tmp_path, *extra) -> list[str]:
    return ["sample", "--model", str(model_path), "--num", "2", "--out",
            str(tmp_path / "s.npz"), "--no-progress", *extra]  # fmt: skip


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, b"just some text\n"])
def test_a_junk_checkpoint_is_one_line(tmp_path, capsys, content):
    bad = tmp_path / "model.pt"
    bad.write_bytes(content)
    assert main(_sample(bad, tmp_path)) == 2
    assert str(bad) in _one_line_error(capsys)


def test_an_incomplete_or_misshapen_checkpoint_is_one_line(tmp_path, capsys, model):
    ckpt = torch.load(model, weights_only=True)
    missing, wrong = dict(ckpt), dict(ckpt)
    del missing["diffusion"]
    name = next(iter(ckpt["ema"]))
    wrong["ema"] = {**ckpt["ema"], name: torch.zeros(3, 1, 7)}
    for bad, why in ((missing, "no 'diffusion' entry"), (wrong, "does not fit")):
        path = tmp_path / "bad.pt"
        torch.save(bad, path)
        assert main(_sample(path, tmp_path)) == 2
        err = _one_line_error(capsys)
        assert why in err and str(path) in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_devices_this_build_cannot_use_are_named_not_blamed_on_the_model(tmp_path, capsys, model):
    assert main(_sample(model, tmp_path, "--device", "cuda")) == 2
    err = _one_line_error(capsys)
    assert "no usable CUDA" in err and "truncated" not in err
    assert main(_sample(model, tmp_path, "--device", "foo")) == 2
    assert "not a torch device" in _one_line_error(capsys)


def test_truncated_csv_gz_and_npz_are_one_line(tmp_path, capsys, own_features):
    import gzip

    from structrepdiff.data.io import read_cdvae_csv
    from structrepdiff.data.predictions import load_predictions

    csv_gz = tmp_path / "p.csv.gz"
    rows = "".join(f"x{k},data_{k * 7919 % 100003}\n" for k in range(5000)).encode()
    whole = gzip.compress(b"material_id,cif\n" + rows)
    csv_gz.write_bytes(whole[: len(whole) // 2])
    for read in (read_cdvae_csv, load_predictions):
        with pytest.raises(ValueError, match="not a readable CSV file"):
            read(csv_gz)
    npz = tmp_path / "cut.npz"
    npz.write_bytes(own_features.read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated or foreign"):
        load_features(npz)
    assert main(_sample(npz, tmp_path)) == 2  # a cut feature file given as a model
    _one_line_error(capsys)


def test_a_full_disk_while_checkpointing_is_one_line(tmp_path, capsys, own_features, monkeypatch):
    def full(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter "
                           "failed writing file data/3: file write failed")  # fmt: skip

    monkeypatch.setattr(torch, "save", full)
    args = ["train", "--features", str(own_features), "--out", str(tmp_path / "run"), "--hidden",
            "16", "--depth", "1", "--T", "20", "--steps", "2", "--no-progress"]  # fmt: skip
    assert main(args) == 4
    err = _one_line_error(capsys)
    assert "could not write checkpoint" in err and "disk full" in err
    assert not any(p.name.startswith(".checkpoint") for p in (tmp_path / "run").iterdir())


def test_one_bad_extxyz_frame_is_an_invalid_crystal_with_its_index(tmp_path):
    from ase.io import write

    from structrepdiff.data.predictions import load_predictions

    atoms = [AseAtomsAdaptor.get_atoms(_perovskite(a)) for a in (3.9, 4.0, 4.1)]
    good = tmp_path / "good.extxyz"
    write(good, atoms, format="extxyz")
    lines = good.read_text().splitlines(keepends=True)
    n = len(atoms[0]) + 2  # lines per frame
    frame1 = [ln.replace("Sr ", "Xx ", 1) if ln.startswith("Sr ") else ln
              for ln in lines[n : 2 * n]]  # fmt: skip
    bad = tmp_path / "bad.extxyz"
    bad.write_text("".join(lines[:n] + frame1 + lines[2 * n :]))
    preds = load_predictions(bad)
    assert len(preds) == 3
    assert preds[0].structure is not None and preds[2].structure is not None
    assert preds[1].structure is None and "frame 1" in preds[1].reason


def test_ctrl_c_ends_quietly_saying_what_was_saved(tmp_path, capsys, monkeypatch):
    import structrepdiff.pipeline.featurize as featurize_mod

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(featurize_mod, "encode_batch", interrupt)
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "good.cif").write_text(_perovskite().to(fmt="cif"))
    out = tmp_path / "x.npz"
    assert main(_featurize_args(folder, out)) == 130
    err = capsys.readouterr().err.strip()
    # nothing was saved before the interrupt: it says so instead of "saved in x.npz"
    assert err == "interrupted: nothing was written yet" and not out.exists()


# --- a failed generate does not block the corrected rerun (case 6) ------------------------


def test_a_failed_generate_does_not_block_the_corrected_rerun(tmp_path, capsys, model):
    out = tmp_path / "gen"
    base = ["generate", "--num", "2", "--out", str(out), "--sample-steps", "5", "--trials", "1",
            "--hops", "1", "--steps", "5", "--no-progress"]  # fmt: skip
    assert main([*base, "--model", str(tmp_path / "missing.pt")]) == 2
    _one_line_error(capsys)
    assert not (out / "generate_config.json").exists()
    assert main([*base, "--model", str(model)]) == 0
    assert (out / "generate_config.json").exists()


# --- nothing produced (cases 11, 18) ------------------------------------------------------


def test_nothing_produced_is_a_nonzero_exit_with_reasons(tmp_path, capsys):
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "broken.cif").write_text("data_x\n_cell_length_a oops\n")
    out = tmp_path / "x.npz"
    assert main(_featurize_args(folder, out)) == 1
    assert "unparseable CIF" in capsys.readouterr().out
    assert load_features(out).skipped[0].id == "broken"  # the reasons are kept
    scaler = tmp_path / "scaler.npz"
    args = [*_featurize_args(folder, tmp_path / "y.npz"), "--save-scaler", str(scaler)]
    assert main(args) == 2
    assert "a scaler needs rows" in _one_line_error(capsys)
    assert not (tmp_path / "y.npz").exists() and not scaler.exists()


def test_reconstruct_of_only_rejected_vectors_exits_nonzero(tmp_path, own_features):
    fs = load_features(own_features)
    R = fs.R[:2].copy()
    R[:, fs.rep.layout.slices["n_atoms"]] = 0.0  # zero atoms: nothing to decode
    npz = tmp_path / "bad.npz"
    save_features(FeatureSet(R, ["a", "b"], fs.rep), npz)
    args = ["reconstruct", "--representations", str(npz), "--out", str(tmp_path / "rec"),
            "--trials", "1", "--hops", "1", "--steps", "5", "--no-progress"]  # fmt: skip
    assert main(args) == 1
    with open(tmp_path / "rec" / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["rejected", "rejected"]
    assert all(r["reason"] for r in rows)


# --- skip reasons keep their cause; one folder expansion (cases 12, 13) -------------------


def test_skip_reasons_keep_the_cause(tmp_path):
    from structrepdiff.data.io import load_cifs
    from structrepdiff.data.registry import get_dataset

    info = get_dataset("perov_5")
    good = _perovskite().to(fmt="cif")
    flat = Structure(Lattice.cubic(4.0), ["Sr", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
    for angle in ("alpha", "beta", "gamma"):  # a singular cell: pymatgen parses nothing
        flat = flat.replace(f"_cell_angle_{angle}   90.00000000", f"_cell_angle_{angle}   0.0")
    (tmp_path / "flat.cif").write_text(flat)
    (tmp_path / "latin1.cif").write_bytes(good.encode() + "# caf\xe9\n".encode("latin-1"))
    (tmp_path / "folder.cif").mkdir()
    loaded = load_cifs([tmp_path], info.atomic_numbers, info.n_max)
    reasons = {s.id: s.reason for s in loaded.skipped}
    assert "pymatgen:" in reasons["flat"] and "Singular matrix" in reasons["flat"]
    assert "not UTF-8" in reasons["latin1"]
    assert "is a folder" in reasons["folder"]
    assert "empty CIF" not in " ".join(reasons.values())


def test_one_folder_expansion_case_insensitive_without_hidden_files(tmp_path):
    from structrepdiff.data.io import expand_cif_paths
    from structrepdiff.data.predictions import load_predictions

    cif = _perovskite().to(fmt="cif")
    (tmp_path / "a.cif").write_text(cif)
    (tmp_path / "B.CIF").write_text(cif)
    (tmp_path / ".a.cif.x1y2.cif").write_text(cif[:40])  # left by an interrupted write
    (tmp_path / "notes.txt").write_text("not a crystal")
    assert [p.name for p in expand_cif_paths([tmp_path])] == ["B.CIF", "a.cif"]
    preds = load_predictions(tmp_path)
    assert sorted(p.id for p in preds) == ["B", "a"] and all(p.structure for p in preds)


def _multi_block_cif() -> str:
    """Three blocks: SrTiO3 at a = 3.9 and 4.1 Å (block names as pymatgen writes them, so
    they repeat) and one whose cell is missing."""
    a, b = (_perovskite(x).to(fmt="cif") for x in (3.9, 4.1))
    broken = "data_broken\n_symmetry_space_group_name_H-M 'P 1'\n"
    return "# written by hand\n" + a + "\n" + b + "\n" + broken


def test_every_block_of_a_multi_block_cif_is_read(tmp_path):
    from structrepdiff.data.io import load_cifs
    from structrepdiff.data.predictions import load_predictions
    from structrepdiff.data.registry import get_dataset

    (tmp_path / "many.cif").write_text(_multi_block_cif())
    info = get_dataset("perov_5")
    loaded = load_cifs([tmp_path], info.atomic_numbers, info.n_max)
    assert loaded.ids == ["many:SrTiO3", "many:SrTiO3~2"]
    assert [round(s.lattice.a, 3) for s in loaded.structures] == [3.9, 4.1]
    (skip,) = loaded.skipped
    assert skip.id == "many:broken" and skip.reason
    preds = load_predictions(tmp_path / "many.cif")
    assert [p.id for p in preds] == ["many:SrTiO3", "many:SrTiO3~2", "many:broken"]
    assert preds[1].structure.lattice.a == pytest.approx(4.1)
    assert preds[2].structure is None and "unreadable CIF many.cif" in preds[2].reason
    (tmp_path / "one.cif").write_text(_perovskite().to(fmt="cif"))  # one block: plain id
    assert [p.id for p in load_predictions(tmp_path / "one.cif")] == ["one"]


def test_near_overlapping_atoms_are_skipped_with_the_distance(tmp_path):
    from structrepdiff.data.io import MIN_DISTANCE, load_cifs
    from structrepdiff.data.registry import get_dataset

    info = get_dataset("perov_5")
    near = Structure(Lattice.cubic(4.0), ["Sr", "O"], [[0, 0, 0], [0, 0, 0.001]])  # 0.004 Å
    (tmp_path / "near.cif").write_text(near.to(fmt="cif"))
    (tmp_path / "good.cif").write_text(_perovskite().to(fmt="cif"))
    loaded = load_cifs([tmp_path], info.atomic_numbers, info.n_max)
    assert loaded.ids == ["good"]
    (skip,) = loaded.skipped
    assert skip.id == "near" and "0.004 Å apart" in skip.reason and MIN_DISTANCE == 0.5


def test_reconstruct_force_clears_its_own_stale_crystals_only(tmp_path):
    from tests.test_reconstruct import REP as REC_REP
    from tests.test_reconstruct import crystals

    structs = list(crystals().values())[:2]
    npz, out = tmp_path / "R.npz", tmp_path / "rec"
    save_features(FeatureSet(encode_structures(structs, REC_REP), ["a", "b"], REC_REP), npz)
    args = ["reconstruct", "--representations", str(npz), "--out", str(out), "--trials", "1",
            "--hops", "1", "--steps", "5", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert (out / "b.cif").exists()
    (out / "mine.cif").write_text("a user's own file")
    save_features(FeatureSet(encode_structures(structs[:1], REC_REP), ["a"], REC_REP), npz,
                  force=True)  # fmt: skip
    assert main([*args, "--force"]) == 0
    assert not (out / "b.cif").exists()  # stale: not in the new summary
    assert (out / "a.cif").exists() and (out / "mine.cif").read_text() == "a user's own file"
    with open(out / "summary.csv", newline="") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == ["a"]


# --- no orphaned workers (case 19) --------------------------------------------------------

ORPHAN_SCRIPT = """
import os, sys, time
from structrepdiff.cli.main import interrupt_on_sigterm
from structrepdiff.evaluate.parallel import parallel_map
from tests.test_hostile import slow_item

interrupt_on_sigterm()
try:
    parallel_map(slow_item, [sys.argv[1]] * 64, workers=2, progress=False)
except KeyboardInterrupt:
    sys.exit(130)
"""


def slow_item(pid_dir: str) -> int:
    """A worker's task for the orphan test: record this worker's pid, then take a while."""
    import time

    Path(pid_dir, str(os.getpid())).touch()
    time.sleep(2.0)
    return os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    )


@pytest.mark.skipif(sys.platform != "linux", reason="/proc and POSIX signals")
def test_sigterm_ends_the_worker_pool_too(tmp_path):
    import signal
    import time

    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT, str(pid_dir)], cwd=root)
    deadline = time.monotonic() + 120
    while len(list(pid_dir.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [int(p.name) for p in pid_dir.iterdir()]
    assert len(workers) == 2, "the workers never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    time.sleep(1.0)
    assert not [pid for pid in workers if _alive(pid)]


# --- help text (case 17) ------------------------------------------------------------------


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield name, child
                yield from _subparsers(child)


def test_help_shows_every_default_and_steps_are_named_apart(capsys):
    import argparse

    from structrepdiff.cli.main import build_parser
    from structrepdiff.reconstruct.config import ReconstructConfig

    parser = build_parser()
    for name, sub in _subparsers(parser):
        text = sub.format_help()
        for action in sub._actions:
            d = action.default
            hidden = argparse.SUPPRESS in (d, action.help) or not action.option_strings
            hidden = hidden or action.nargs == 0  # flags
            shown = not (hidden or d is None or d is False or d in ([], ()))
            if shown:
                want = "".join(f"(default: {d})".split())
                assert want in "".join(text.split()), (name, action.dest)
        assert not re.search(r"\(default: ([^)]*)\)\s*\(default: \1\)", text), name  # once
    subs = dict(_subparsers(parser))
    assert "--sample-steps" in subs["sample"].format_help()
    assert "--steps" not in subs["sample"].format_help().replace("--sample-steps", "")
    assert f"(default: {ReconstructConfig().steps})" in " ".join(
        subs["reconstruct"].format_help().split()
    )
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        ReconstructConfig(threshold=-1e-3)


def test_a_hostile_folder_goes_through_featurize_reconstruct_evaluate(tmp_path):
    """Every good input comes out reconstructed and matched; every bad one has a reason."""
    import pandas as pd

    bzo = Structure(Lattice.cubic(4.2), ["Ba", "Zr", "O", "O", "O"], SITES)
    good = {"sto": _perovskite(3.9), "bzo": bzo}
    folder = tmp_path / "in"
    folder.mkdir()
    for name, s in good.items():
        (folder / f"{name}.cif").write_text(s.to(fmt="cif"))
    knb = Structure(Lattice.cubic(4.0), ["K", "Nb", "O", "O", "O"], SITES)
    two = knb.to(fmt="cif") + "\ndata_broken\n_symmetry_space_group_name_H-M 'P 1'\n"
    (folder / "two.cif").write_text(two)  # one good block, one without a cell
    good["two:" + two.split("data_", 2)[1].split()[0]] = knb
    (folder / "junk.cif").write_text("not a cif")
    (folder / "empty.cif").write_text("")
    (folder / "latin1.cif").write_bytes(b"data_x\n# caf\xe9\n")
    (folder / "dir.cif").mkdir()
    (folder / "tiny.cif").write_text(_tiny_cell().to(fmt="cif"))
    near = Structure(Lattice.cubic(4.0), ["Sr", "O"], [[0, 0, 0], [0, 0, 0.001]])
    (folder / "near.cif").write_text(near.to(fmt="cif"))
    (folder / "alien.cif").write_text(Structure(Lattice.cubic(4), ["U"], [[0, 0, 0]]).to(fmt="cif"))
    bad = {"two:broken", "junk", "empty", "latin1", "dir", "tiny", "near", "alien"}

    feats = tmp_path / "f.npz"
    assert main(_featurize_args(folder, feats)) == 0
    fs = load_features(feats)
    assert sorted(fs.ids) == sorted(good)
    reasons = {s.id: s.reason for s in fs.skipped}
    assert set(reasons) == bad and all(r.strip() for r in reasons.values())

    rec = tmp_path / "rec"
    assert main(["reconstruct", "--representations", str(feats), "--out", str(rec), "--trials",
                 "3", "--hops", "3", "--steps", "200", "--no-progress"]) == 0  # fmt: skip
    with open(rec / "summary.csv", newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(good) and all(r["cif"] for r in rows.values())

    data = tmp_path / "data" / "perov_5"
    data.mkdir(parents=True)
    pd.DataFrame([{"material_id": k, "cif": s.to(fmt="cif")} for k, s in good.items()]).to_csv(
        data / "test.csv", index=False
    )
    assert main(["evaluate", "reconstruction", "--pred", str(rec), "--dataset", "perov_5",
                 "--data-dir", str(data.parent), "--workers", "1", "--cache-dir",
                 str(tmp_path / "cache"), "--no-progress"]) == 0  # fmt: skip
    m = json.loads((rec / "evaluation_reconstruction" / "metrics.json").read_text())
    assert m["n_predictions"] == len(good) and m["match_rate_pct"] == pytest.approx(100.0), m
