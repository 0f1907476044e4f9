"""A wheel installed elsewhere (issue 27, deliverable 2): built from this checkout, installed
(not editable) into a fresh venv, run from an empty folder with an empty HOME and no data, it
finds its bundled model by name and gives the same crystals as this checkout, through the CLI
and the API."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["generate", "--model", "perov_5", "--num", "2", "--steps", "40", "--sample-steps",
        "10", "--seed", "3", "--no-progress"]  # fmt: skip


API = """
import structrepdiff
from structrepdiff.reconstruct.config import SymmetricConfig
m = structrepdiff.load_model("perov_5", symmetric=SymmetricConfig(steps=40))
for c in m.generate(2, seed=3, sample_steps=10):
    print(c.id, c.status, f"{c.loss:.6e}")
"""


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def _crystals(folder: Path) -> list[tuple]:
    with open(folder / "summary.csv") as fh:
        return [(r["id"], r["status"], r["loss"], r["space_group"],
                 (folder / r["cif"]).read_text().split("_cell_length_a")[1])
                for r in csv.DictReader(fh)]  # fmt: skip


def test_a_wheel_installed_elsewhere_generates_the_same_crystals(tmp_path):
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp_path / "dist"), str(ROOT)])  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("structrepdiff-*.whl")
    assert wheel.stat().st_size <= 60e6  # the budget
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # dependencies from this environment, without its editable structrepdiff (.pth files on
    # an added path are not processed, so only the wheel provides the package)
    (Path(site.stdout.strip()) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    empty = tmp_path / "elsewhere"
    (empty / "home").mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(empty / "home"), "OMP_NUM_THREADS": "1",
           "STRUCTREPDIFF_NO_SHARED": "1"}  # fmt: skip
    where = _run([py, "-c", "import structrepdiff; print(structrepdiff.__file__)"], env=env,
                 cwd=empty)  # fmt: skip
    assert not where.stdout.strip().startswith(str(ROOT)), where.stdout
    run = _run([venv / "bin" / "structrepdiff", *ARGS, "--out", "out"], env=env, cwd=empty)
    assert "bundled with the model" in run.stderr
    assert not (empty / "home" / ".cache" / "structrepdiff" / "data").exists()
    here = _run([Path(sys.executable).parent / "structrepdiff", *ARGS, "--out",
                 str(tmp_path / "here")], env={**env, "HOME": str(tmp_path)})  # fmt: skip
    assert "bundled with the model" in here.stderr
    assert _crystals(empty / "out") == _crystals(tmp_path / "here")
    api = _run([py, "-c", API], env=env, cwd=empty)  # the same crystals through the API
    with open(empty / "out" / "summary.csv") as fh:
        cli = [(r["id"], r["status"], f"{float(r['loss']):.6e}") for r in csv.DictReader(fh)]
    assert api.stdout.split() == [x for row in cli for x in row]
