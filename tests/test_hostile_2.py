"""Hostile input, second round (issue 29). Each test names the item it closes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write
from pymatgen.core import Lattice, Structure

from structrepdiff.data.predictions import Prediction

ROOT = Path(__file__).resolve().parents[1]


def _nan_structures() -> list[Structure]:
    good = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nan_xyz = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [np.nan, 0.5, 0.5]])
    inf_cell = Structure(Lattice([[5.6, 0, 0], [0, np.inf, 0], [0, 0, 5.6]]), ["Na", "Cl"],
                         [[0, 0, 0], [0.5, 0.5, 0.5]])  # fmt: skip
    return [good, nan_xyz, inf_cell]


def test_1_non_finite_crystals_are_one_reason_each_never_a_crash_in_process():
    """Item 1 (in memory): evaluate, the gallery, the histograms' properties, featurize and the
    relaxation precheck give a per-crystal reason for a NaN / inf crystal."""
    import structrepdiff
    from structrepdiff import plots
    from structrepdiff.evaluate.symmetry import space_group
    from structrepdiff.relax.config import RelaxConfig
    from structrepdiff.relax.core import precheck

    good, nan_xyz, inf_cell = _nan_structures()
    assert space_group(nan_xyz).reason == "non-finite lattice or coordinates"
    assert precheck(nan_xyz, RelaxConfig()) == "non-finite lattice or coordinates"
    props = plots.crystal_properties([good, nan_xyz, inf_cell])
    assert props["n_atoms"] == [2]
    plots.crystal_gallery([good, nan_xyz])  # draws a tile with the reason
    fs = structrepdiff.featurize([good, nan_xyz, inf_cell], dataset="mp_20", ids=["g", "n", "i"])
    assert fs.ids == ["g"] and {s.id: s.reason for s in fs.skipped} == {
        "n": "non-finite lattice or coordinates", "i": "non-finite lattice or coordinates"}
    from structrepdiff.evaluate.run import as_predictions

    preds = as_predictions([good, nan_xyz], None)
    assert preds[1].structure is None and preds[1].reason == "non-finite lattice or coordinates"


def test_1_a_nan_frame_through_the_command_line_is_a_reason_not_a_segfault(tmp_path):
    """Item 1 (files): `evaluate generation --workers 1` and `plot gallery` on an extxyz with
    a NaN frame finish in a subprocess (a segfault or hang would fail here, not kill pytest)."""
    frames = [Atoms("NaCl", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[5.6] * 3,
                    pbc=True),
              Atoms("NaCl", positions=[[0, 0, 0], [np.nan, 2.8, 2.8]], cell=[5.6] * 3,
                    pbc=True)]  # fmt: skip
    path = tmp_path / "pred.extxyz"
    write(path, frames, format="extxyz")
    data = tmp_path / "data" / "mp_20"
    data.mkdir(parents=True)
    import pandas as pd
    from pymatgen.io.cif import CifWriter

    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    for split in ("test", "val"):
        pd.DataFrame({"material_id": ["x"], "cif": [str(CifWriter(nacl))]}).to_csv(
            data / f"{split}.csv", index=False)
    run = [sys.executable, "-m", "structrepdiff.cli.main"]
    cmds = [["evaluate", "generation", "--pred", str(path), "--dataset", "mp_20", "--workers",
             "1", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "ev"),
             "--no-progress"],
            ["plot", "gallery", "--pred", str(path), "--out", str(tmp_path / "g.png")]]
    for cmd in cmds:
        out = subprocess.run([*run, *cmd], capture_output=True, text=True, timeout=300,
                             cwd=ROOT)  # fmt: skip
        assert out.returncode == 0, (cmd[:2], out.returncode, out.stderr[-1500:])
    import json

    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["n_generated"] == 2 and m["struct_validity_pct"] == pytest.approx(50.0)


def test_2_a_second_run_into_a_busy_folder_is_refused_in_one_line(tmp_path, capsys):
    """Item 2: while one process writes into OUT, `generate`, `reconstruct` and `relax` into
    the same OUT say who holds it and write nothing; once it is gone, the folder is free."""
    from structrepdiff.cli.main import main
    from structrepdiff.features import FeatureSet, save_features
    from structrepdiff.pipeline.checkpoint import LoadedModel

    rep = LoadedModel.load("perov_5").rep
    save_features(FeatureSet(np.zeros((1, rep.layout.dim)), ["a"], rep, [], {}), tmp_path / "x.npz")
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from structrepdiff.data.run_folder import run_lock\n"
         f"with run_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        before = sorted(p.name for p in out.iterdir())
        for args in (["generate", "--model", "perov_5", "--num", "1", "--out", str(out)],
                     ["reconstruct", "--representations", str(tmp_path / "x.npz"), "--out",
                      str(out)],
                     ["relax", "--pred", str(tmp_path), "--out", str(out)]):  # fmt: skip
            assert main(args) == 2, args[0]
            errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
            assert len(errors) == 1 and f"in use by pid {holder.pid}" in errors[0], errors
        assert sorted(p.name for p in out.iterdir()) == before  # nothing written
    finally:
        holder.kill()
        holder.wait()
    from structrepdiff.data.run_folder import run_lock

    with run_lock(out):  # a killed holder frees the lock at once
        pass


def test_12_a_failed_command_leaves_no_empty_out_folder(tmp_path, capsys):
    """Item 12: a run that fails before writing anything removes the folder it created."""
    import numpy as np

    from structrepdiff.cli.main import main
    from structrepdiff.features import FeatureSet, save_features
    from structrepdiff.pipeline.checkpoint import LoadedModel

    rep = LoadedModel.load("perov_5").rep
    save_features(FeatureSet(np.zeros((1, rep.layout.dim)), ["a"], rep, [], {}), tmp_path / "x.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a template file")
    out = tmp_path / "never"
    assert main(["reconstruct", "--representations", str(tmp_path / "x.npz"), "--out",
                 str(out), "--templates", str(tmp_path / "bad.npz")]) == 2  # fmt: skip
    assert not out.exists()


def test_10_plots_refuse_empty_results_odd_names_and_mixed_vectors(tmp_path, capsys):
    """Item 10: `plot --out` must be a .png (never a silent X.png beside X); an empty folder,
    --limit 0 / -1, --n-data 0 and vectors of two representations are one-line errors
    (exit 2), never an empty picture with exit 0."""
    from structrepdiff.cli.main import main
    from structrepdiff.features import FeatureSet, save_features
    from structrepdiff.pipeline.checkpoint import LoadedModel

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "summary.csv").write_text("id,status,loss,cif\n")
    cases = [(["plot", "recon-loss", "--pred", str(empty), "--out", str(tmp_path / "x")],
              "give a .png name"),
             (["plot", "recon-loss", "--pred", str(empty), "--out", str(tmp_path / "r.png")],
              "no reconstruction losses"),
             (["plot", "gallery", "--pred", str(empty), "--limit", "0", "--out",
               str(tmp_path / "g.png")], "--limit 0"),
             (["plot", "gallery", "--pred", str(empty), "--limit", "-1", "--out",
               str(tmp_path / "g.png")], "--limit -1"),
             (["plot", "histograms", "--pred", str(empty), "--dataset", "perov_5", "--n-data",
               "0", "--out", str(tmp_path / "h.png")], "--n-data 0")]  # fmt: skip
    p5, c24 = LoadedModel.load("perov_5").rep, LoadedModel.load("carbon_24").rep
    save_features(FeatureSet(np.zeros((3, p5.layout.dim)), ["a", "b", "c"], p5, [], {}),
                  tmp_path / "p5.npz")  # fmt: skip
    save_features(FeatureSet(np.zeros((3, c24.layout.dim)), ["a", "b", "c"], c24, [], {}),
                  tmp_path / "c24.npz")  # fmt: skip
    cases.append((["plot", "pca", "--vectors", str(tmp_path / "p5.npz"), str(tmp_path / "c24.npz"),
                   "--out", str(tmp_path / "p.png")], "different representations"))
    for args, said in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and said in err, (args, err)
    assert not list(tmp_path.glob("*.png"))


def test_6_api_arguments_are_checked_at_the_boundary():
    """Item 6: bad counts, seeds, formulas, ids, arrays and batch sizes are TypeError /
    ValueError naming the argument; predict_structure(None) never samples compositions."""
    import structrepdiff

    m = structrepdiff.load_model("perov_5")
    for bad, err, said in ((0, ValueError, "`n`"), (-1, ValueError, "`n`"),
                           (2.5, TypeError, "`n`"), (10**9, ValueError, "in chunks")):  # fmt: skip
        with pytest.raises(err, match=said):
            m.generate(bad)
    with pytest.raises(TypeError, match="`seed`"):
        m.generate(1, seed=None)
    with pytest.raises(TypeError, match="`formula`"):
        m.predict_structure(None)
    with pytest.raises(TypeError, match="`formula`"):
        m.predict_structure(42)
    with pytest.raises(ValueError, match="`batch_size`"):
        m.sample(2, batch_size=0)
    R = m.sample(2, steps=2)
    with pytest.raises(ValueError, match="`ids` has 3 entries for 2 rows"):
        m.reconstruct(R, ids=["a", "b", "c"])
    with pytest.raises(ValueError, match="`R` must be"):
        m.reconstruct(R[:, :5])
    from structrepdiff.reconstruct.config import ReconstructConfig

    quick = ReconstructConfig(trials=1, hops=1, steps=2)
    a = m.reconstruct(R[::-1].copy(), config=quick)
    b = m.reconstruct(R[::-1], config=quick)  # a negative-stride view: the same crystals
    assert [c.loss for c in a] == [c.loss for c in b]
    assert structrepdiff.load_model("perov_5", templates="none").templates is None


def test_7_evaluate_takes_one_crystal_and_an_atoms_without_a_cell():
    """Item 7: `evaluate(structure)` scores one crystal (not its sites); an ase Atoms with no
    cell is one invalid crystal with a reason, the others are still scored."""
    from ase import Atoms

    from structrepdiff.evaluate.run import as_predictions

    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    preds = as_predictions(nacl)
    assert len(preds) == 1 and preds[0].structure is not None
    preds = as_predictions([nacl, Atoms("NaCl", positions=[[0, 0, 0], [2.8, 0, 0]])])
    assert preds[0].structure is not None and preds[1].structure is None
    assert preds[1].reason == "not a crystal: ase Atoms without a cell"
    with pytest.raises(ValueError, match="`ids` has 1 entries for 2 crystals"):
        as_predictions([nacl, nacl], ids=["a"])


def test_8_a_malformed_hull_is_one_line_naming_the_file(tmp_path):
    """Item 8: wrong types, a missing key, a truncated file and a NaN chemical potential are
    ValueErrors that name the file (never a traceback, never NaN in metrics.json)."""
    import json

    from structrepdiff.evaluate.hull import ReferenceHull

    good = {"mu": {"Na": -1.0, "Cl": -1.5}, "points": [{"formula": "NaCl", "e_form": -0.5,
            "source": "x", "id": "a"}], "provenance": {}}  # fmt: skip
    (tmp_path / "ok.json").write_text(json.dumps(good))
    assert ReferenceHull.load(tmp_path / "ok.json").mu == {"Na": -1.0, "Cl": -1.5}
    cases = {"types.json": json.dumps({**good, "mu": ["Na", -1.0]}),
             "key.json": json.dumps({k: v for k, v in good.items() if k != "points"}),
             "torn.json": json.dumps(good)[:40],
             "nan.json": json.dumps({**good, "mu": {"Na": float("nan"), "Cl": -1.5}})}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{name} is not a reference hull"):
            ReferenceHull.load(tmp_path / name)


def test_4_a_resume_spelled_another_way_is_the_same_run_and_a_change_is_named(
    tmp_path, capsys, monkeypatch
):
    """Item 4: the same vectors given by a relative path, an absolute one or a symlink resume
    the run; a real change is refused naming the setting with both values and what `--force`
    would delete."""
    import os

    import structrepdiff
    from structrepdiff.cli.main import main
    from structrepdiff.features import save_features

    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    fs = structrepdiff.featurize([nacl], dataset="mp_20", ids=["nacl"])
    save_features(fs, tmp_path / "v.npz")
    os.symlink(tmp_path / "v.npz", tmp_path / "link.npz")
    monkeypatch.chdir(tmp_path)
    base = ["reconstruct", "--out", "out", "--steps", "20", "--no-progress"]
    assert main([*base, "--representations", "v.npz"]) == 0
    for spelled in (str(tmp_path / "v.npz"), "link.npz", "./v.npz"):
        assert main([*base, "--representations", spelled]) == 0
        assert "(1 already done before this run)" in capsys.readouterr().out
    assert main(["reconstruct", "--out", str(tmp_path / "out"), "--steps", "5",
                 "--representations", "v.npz"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "config.steps: 20 then, 5 now" in err and "delete its 1 finished crystals" in err


def test_3_and_5_scheduler_addresses_that_are_not_dask_and_too_many_workers(
    tmp_path, capsys, monkeypatch
):
    """Items 3 and 5: a service that is not a Dask scheduler (a port that never answers) is one
    line naming the address within the handshake bound; local:N above the machine is refused
    in one line naming the limit."""
    pytest.importorskip("distributed")
    import socket
    import threading

    import structrepdiff.cluster as cluster
    from structrepdiff.cli.main import main

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    server = socket.socket()  # accepts and then says nothing, as a web dashboard waits for
    server.bind(("127.0.0.1", 0))  # a request line: Dask's own timeout never fires there
    server.listen()
    held = []
    threading.Thread(target=lambda: held.extend(server.accept() for _ in range(8)),
                     daemon=True).start()  # fmt: skip
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        for spec, said in ((address, f"`scheduler` {address}"),
                           ("local:999", "at most")):  # fmt: skip
            with pytest.raises((OSError, ValueError), match=said), cluster.open_client(spec):
                pass
        assert main(["evaluate", "generation", "--pred", str(tmp_path), "--dataset", "mp_20",
                     "--scheduler", "local:999"]) == 2  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--scheduler local:999" in err, err
    finally:
        server.close()


def test_11_the_batch_size_is_part_of_a_runs_settings(tmp_path, capsys):
    """Item 11: results depend slightly on the batch a crystal shares, so the batch size is
    recorded with the run and a resume with another one is refused by name."""
    import json

    import structrepdiff
    from structrepdiff.cli.main import main
    from structrepdiff.features import save_features

    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    save_features(structrepdiff.featurize([nacl], dataset="mp_20", ids=["x"]), tmp_path / "v.npz")
    base = ["reconstruct", "--representations", str(tmp_path / "v.npz"), "--out",
            str(tmp_path / "o"), "--steps", "5", "--no-progress"]  # fmt: skip
    assert main([*base, "--batch-size", "4"]) == 0
    saved = json.loads((tmp_path / "o" / "reconstruct_config.json").read_text())
    assert saved["batch_size"] == 4
    assert main([*base, "--batch-size", "8"]) == 2
    assert "batch_size: 4 then, 8 now" in capsys.readouterr().err


def test_12_an_interrupted_command_says_saved_only_when_something_was(tmp_path, capsys,
                                                                      monkeypatch):
    """Item 12: "finished work is saved in OUT" only when OUT holds something."""
    from structrepdiff.cli import main as cli_main
    from structrepdiff.cli import reconstruct_cmd

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(reconstruct_cmd, "run", interrupt)
    args = ["reconstruct", "--representations", "x.npz", "--out", str(tmp_path / "o")]
    assert cli_main.main(args) == 130
    assert "interrupted: nothing was written yet" in capsys.readouterr().err
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "summary.csv").write_text("id,status\n")
    assert cli_main.main(args) == 130
    assert "finished work is saved in" in capsys.readouterr().err


def _double_or_die(x: int) -> int:
    """Doubles ``x``; item 3 kills its worker the way a crash in compiled code does."""
    if x == 3:
        os.kill(os.getpid(), signal.SIGSEGV)
    return 2 * x


def test_1_a_dying_worker_is_reported_by_item_and_signal_and_the_pool_goes_on():
    from structrepdiff.evaluate.parallel import parallel_map

    t0 = time.monotonic()
    got = parallel_map(_double_or_die, list(range(40)), workers=2, progress=False,
                       on_crash=lambda x, why: why)  # fmt: skip
    assert got[:3] == [0, 2, 4] and got[4:] == [2 * x for x in range(4, 40)]
    assert "died" in got[3] and "SIGSEGV" in got[3]
    with pytest.raises(RuntimeError, match=r"SIGSEGV.*item 3"):
        parallel_map(_double_or_die, list(range(8)), workers=2, progress=False)
    assert time.monotonic() - t0 < 120  # no hang


def test_1_a_crystal_that_kills_its_worker_is_one_invalid_crystal_with_the_reason():
    from structrepdiff.evaluate.suite import crashed_prediction

    pred = Prediction("x", Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3]))
    row = crashed_prediction(pred, "the evaluation worker died (signal SIGSEGV)")
    assert row["id"] == "x" and not row["valid"] and "SIGSEGV" in row["struct_reason"]


def test_10_crystals_and_templates_of_another_dataset_are_named(tmp_path, caplog):
    from structrepdiff.data.registry import outside_dataset
    from structrepdiff.reconstruct.starts import resolve_starts

    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    carbon = Structure(Lattice.cubic(3.6), ["C", "C"], [[0, 0, 0], [0.25] * 3])
    assert outside_dataset([carbon, nacl, None], "mp_20") == ""
    note = outside_dataset([carbon, nacl], "carbon_24")
    assert note.startswith("1 of 2 crystals cannot come from carbon_24") and "Cl, Na" in note
    assert "with more than its 5 atoms" in outside_dataset([nacl * (2, 2, 2)], "perov_5")
    npz = tmp_path / "mp_templates.npz"
    np.savez(npz, ids=np.array(["a", "b"]), counts=np.array([2, 2]),
             numbers=np.array([11, 17, 6, 6]), frac=np.zeros((4, 3)),
             lattice=np.stack([np.eye(3) * 5.6] * 2))  # fmt: skip
    with caplog.at_level("WARNING"):
        resolve_starts(npz, "carbon_24")
    assert "1 of 2 templates in mp_templates.npz cannot come from carbon_24" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        resolve_starts(npz, "mp_20")
    assert "cannot come from" not in caplog.text
