"""Reconstruction spread over a Dask LocalCluster: the same crystals as a serial run, and a
worker killed mid-run loses nothing."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time

import pytest
from pymatgen.core import Structure
from tests.test_reconstruct import REP, _feature_file, crystals

from structrepdiff.cli.main import main
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction
from structrepdiff.representation.encode import encode_structures

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
CFG = ReconstructConfig(trials=2, hops=2, steps=80, seed=0)


def _structures() -> dict[str, Structure]:
    """Nine small crystals: the three of test_reconstruct at three lattice scales."""
    out = {}
    for scale in (0.97, 1.0, 1.03):
        for name, s in crystals().items():
            s = s.copy()
            s.scale_lattice(s.volume * scale**3)
            out[f"{name}_{scale}"] = s
    return out


@pytest.fixture(scope="module")
def client():
    from structrepdiff.cluster import open_client

    with open_client("local:2") as c:
        yield c


@pytest.fixture
def vectors(tmp_path):
    structs = _structures()
    return _feature_file(tmp_path, encode_structures(list(structs.values()), REP), list(structs))


def _rows(out) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def _same_crystals(a, b) -> None:
    ra, rb = _rows(a), _rows(b)
    assert set(ra) == set(rb) and len(ra) == 9
    for rid in ra:
        assert (ra[rid]["status"], ra[rid]["loss"], ra[rid]["steps"]) == (
            rb[rid]["status"], rb[rid]["loss"], rb[rid]["steps"]), rid  # fmt: skip
        assert (a / ra[rid]["cif"]).read_text() == (b / rb[rid]["cif"]).read_text()


def _job(vectors, out) -> ReconstructJob:
    return ReconstructJob(vectors, out, CFG, batch_size=2, progress=False)


def test_a_distributed_run_gives_the_serial_crystals(tmp_path, vectors, client):
    serial, spread = tmp_path / "serial", tmp_path / "spread"
    run_reconstruction(_job(vectors, serial))
    run_reconstruction(_job(vectors, spread), client)
    _same_crystals(serial, spread)


def test_a_killed_worker_loses_no_crystal(tmp_path, vectors, client):
    serial, spread = tmp_path / "serial", tmp_path / "spread"
    run_reconstruction(_job(vectors, serial))
    victim = sorted(client.scheduler_info()["workers"])[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    killed = []

    def kill_once_rows_appear():
        for _ in range(1200):
            summary = spread / "summary.csv"
            if summary.exists() and len(summary.read_text().splitlines()) >= 3:
                os.kill(pid, signal.SIGKILL)  # mid-run, with batches still on that worker
                killed.append(len(summary.read_text().splitlines()) - 1)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_once_rows_appear)
    killer.start()
    run_reconstruction(_job(vectors, spread), client)
    killer.join()
    assert killed and killed[0] < 9  # the worker died before the run was over
    _same_crystals(serial, spread)  # every crystal once, identical to the serial run


def test_cli_scheduler_option_matches_serial(tmp_path, vectors, caplog):
    import logging

    caplog.set_level(logging.INFO)
    args = [
        "reconstruct",
        "--representations",
        str(vectors),
        "--trials",
        "2",
        "--hops",
        "2",
        "--steps",
        "80",
        "--batch-size",
        "2",
        "--templates",
        "none",
        "--no-progress",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--scheduler", "local:1"]) == 0
    _same_crystals(tmp_path / "a", tmp_path / "b")
    chatter = [r for r in caplog.records if r.name.startswith("distributed")
               and r.levelno < logging.WARNING]  # fmt: skip
    assert not chatter, chatter[:3]  # Dask's start / cancel / close INFO lines stay quiet


def test_a_bad_scheduler_spec_is_one_line(tmp_path, vectors, capsys):
    args = ["reconstruct", "--representations", str(vectors), "--out", str(tmp_path / "c"),
            "--templates", "none", "--scheduler", "local:0", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "local:N needs N >= 1" in capsys.readouterr().err


def test_relax_on_dask_workers_gives_the_serial_results(tmp_path, client):
    pytest.importorskip("chgnet")
    from tests.test_relax import rattled_cu

    from structrepdiff.relax.config import RelaxConfig
    from structrepdiff.relax.run import RelaxJob, run_relax

    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        rattled_cu(seed=k).to(filename=str(folder / f"cu{k}.cif"))
    cfg = RelaxConfig(max_steps=60)
    run_relax(RelaxJob(folder, tmp_path / "serial", cfg, progress=False))
    run_relax(RelaxJob(folder, tmp_path / "spread", cfg, progress=False), client)
    a, b = _rows(tmp_path / "serial"), _rows(tmp_path / "spread")
    assert set(a) == set(b) == {"cu0", "cu1", "cu2"}
    for rid in a:
        for key in ("status", "energy_before", "energy_after", "steps"):
            assert a[rid][key] == b[rid][key], (rid, key)


def test_evaluate_on_dask_workers_gives_the_same_metrics(tmp_path):
    from tests.conftest import perovskite, write_perov_splits

    data = write_perov_splits(tmp_path / "data")
    gen = tmp_path / "gen"
    gen.mkdir()
    for k, (a, b, c) in enumerate([("Sr", "Ti", 3.9), ("Ba", "Ti", 4.0), ("K", "Nb", 4.1)]):
        perovskite(a, b, c).to(filename=str(gen / f"g{k}.cif"))
    base = ["evaluate", "generation", "--pred", str(gen), "--dataset", "perov_5", "--data-dir",
            str(data), "--no-progress", "--force"]  # fmt: skip
    ev = gen / "evaluation_generation"
    assert main([*base, "--workers", "1", "--cache-dir", str(tmp_path / "c1")]) == 0
    serial = json.loads((ev / "metrics.json").read_text())
    rows = (ev / "per_crystal.csv").read_text()
    assert main([*base, "--scheduler", "local:2", "--cache-dir", str(tmp_path / "c2")]) == 0
    spread = json.loads((ev / "metrics.json").read_text())
    skip = {"date", "config", "seconds"}
    assert {k: v for k, v in spread.items() if k not in skip} == {
        k: v for k, v in serial.items() if k not in skip}  # fmt: skip
    assert (ev / "per_crystal.csv").read_text() == rows
