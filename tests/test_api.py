"""The Python surface (`structrepdiff.load_model`, `evaluate`, `featurize`): the README's
example verbatim, and the same results as the file-based CLI for the same seed."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from tests.conftest import PEROVSKITES, perovskite, write_perov_splits

import structrepdiff
from structrepdiff.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """perov_5 val / test of four cubic perovskites each: templates and references in seconds."""
    return write_perov_splits(tmp_path_factory.mktemp("data"))


@pytest.fixture
def tiny_env(tiny_data, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("STRUCTREPDIFF_DATA", str(tiny_data))
    monkeypatch.setenv("STRUCTREPDIFF_CACHE", str(tmp_path / "cache"))
    return tiny_data


def readme_python_example() -> str:
    """The first ```python block under the README's "## Python API" heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_verbatim(tiny_env, capsys):
    code = readme_python_example()
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # our own README
    crystals = scope["crystals"]
    assert len(crystals) == 4 and all(isinstance(c, structrepdiff.Crystal) for c in crystals)
    assert all(c.structure is not None and c.status in ("converged", "not_converged")
               for c in crystals)  # fmt: skip
    assert [c.formula for c in scope["candidates"]] == ["SrTiO3", "SrTiO3"]
    m = scope["result"].metrics
    assert m["n_generated"] == 4 and len(scope["result"].rows) == 4
    assert scope["R"].shape[0] == 4
    assert capsys.readouterr().out.strip()  # the example prints its metrics


@pytest.mark.parametrize("space_group", ["off", "auto"])
def test_the_api_gives_the_cli_crystals_for_the_same_seed(tiny_env, tmp_path, space_group):
    """The free path with a template file, and the default path inside space groups (the
    bundled prior; templates of the tiny val split on Wyckoff parameters, found by both)."""
    from structrepdiff.reconstruct.templates import cached_templates

    tpl = tmp_path / "tpl.npz"
    cached_templates("perov_5", "val").save(tpl)
    out = tmp_path / "gen"
    free = space_group == "off"
    extra = ["--templates", str(tpl), "--trials", "4", "--hops", "1", "--steps", "300"]
    bundled = ROOT / "src" / "structrepdiff" / "models" / "perov_5.pt"
    assert main(["generate", "--model", str(bundled), "--num", "3",
                 "--out", str(out), "--seed", "3", "--no-progress", "--space-group",
                 space_group, *(extra if free else [])]) == 0  # fmt: skip
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    model = structrepdiff.load_model("perov_5", templates=tpl if free else "auto")
    crystals = model.generate(3, seed=3, space_group=space_group)
    assert all((c.space_group is None) == free for c in crystals)
    assert [c.id for c in crystals] == [r["id"] for r in rows]
    for c, r in zip(crystals, rows, strict=True):
        assert c.status == r["status"] and f"{c.loss:.6e}" == r["loss"]
        s = Structure.from_file(out / r["cif"])  # the CIF writer groups sites by species
        if free:
            assert np.allclose(s.lattice.matrix, c.structure.lattice.matrix, atol=1e-5)
            assert _sites(s) == pytest.approx(_sites(c.structure), abs=1e-5)
        else:  # the CIF writer re-orients a cell whose first vector is not along x
            from pymatgen.analysis.structure_matcher import StructureMatcher

            tight = StructureMatcher(ltol=1e-4, stol=1e-4, angle_tol=1e-3, primitive_cell=False,
                                     scale=False)  # fmt: skip
            assert tight.fit(s, c.structure)


def _sites(s: Structure) -> list:
    """(Z, wrapped fractional coordinates) of every site, sorted: one crystal, any site order."""
    rows = sorted((site.specie.Z, *np.round(site.frac_coords % 1.0, 4)) for site in s)
    return [x for row in rows for x in row]


def test_evaluate_in_memory_equals_evaluate_generation_on_files(tiny_env, tmp_path):
    gen = tmp_path / "gen"
    gen.mkdir()
    structures = [perovskite("Sr", "Ti", 3.9), perovskite("Ba", "Ti", 4.0)]
    for k, s in enumerate(structures):
        s.to(filename=str(gen / f"{k}.cif"))
    assert main(["evaluate", "generation", "--pred", str(gen), "--dataset", "perov_5",
                 "--workers", "1", "--no-progress"]) == 0  # fmt: skip
    files = json.loads((gen / "evaluation_generation" / "metrics.json").read_text())
    read_back = [Structure.from_file(gen / f"{k}.cif") for k in range(len(structures))]
    mem = structrepdiff.evaluate(read_back, dataset="perov_5").metrics  # same 8-decimal sites
    skip = {"pred", "date", "config", "seconds", "versions", "machine"}
    assert {k: v for k, v in mem.items() if k not in skip} == {
        k: v for k, v in files.items() if k not in skip}  # fmt: skip
    assert structrepdiff.evaluate.composition_validity("NaCl").value  # still the package


def test_evaluate_counts_what_is_not_a_crystal(tiny_env):
    rows = structrepdiff.evaluate([perovskite("Sr", "Ti", 3.9), None, "SrTiO3"],
                                  dataset="perov_5", novelty_split="").rows  # fmt: skip
    assert [r["valid"] for r in rows] == [True, False, False]
    assert "not a crystal: str" in rows[2]["struct_reason"]


def test_featurize_in_memory_equals_featurize_on_cifs(tmp_path):
    from structrepdiff.features import load_features

    structures = [perovskite(a, b, c) for a, b, c in PEROVSKITES[:2]]
    folder = tmp_path / "cifs"
    folder.mkdir()
    for k, s in enumerate(structures):
        s.to(filename=str(folder / f"s{k}.cif"))
    out = tmp_path / "f.npz"
    assert main(["featurize", "--cif", str(folder), "--elements-from", "perov_5", "--preset",
                 "small", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    files = load_features(out)
    bad = Structure(Lattice.cubic(4.0), ["U"], [[0, 0, 0]])  # outside the vocabulary
    fs = structrepdiff.featurize([*structures, bad], dataset="perov_5", preset="small")
    assert fs.ids == files.ids == ["s0", "s1"]
    np.testing.assert_allclose(fs.R, files.R, rtol=1e-6, atol=1e-9)
    assert [s.id for s in fs.skipped] == ["s2"] and "vocabulary" in fs.skipped[0].reason


def test_bundled_names_and_missing_models_are_one_line_errors(tmp_path, monkeypatch):
    from structrepdiff.api import model_path

    assert model_path("perov_5") == ROOT / "src" / "structrepdiff" / "models" / "perov_5.pt"
    with pytest.raises(FileNotFoundError, match="neither a bundled name"):
        model_path("perov5")
    monkeypatch.setenv("STRUCTREPDIFF_MODELS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="STRUCTREPDIFF_MODELS"):
        model_path("mp_20")


def test_importing_the_package_imports_no_stage():
    code = (
        "import sys, structrepdiff; "
        "print([m for m in sys.modules if m.startswith(('torch', 'structrepdiff.'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_library_cli_and_api_give_the_same_crystals_with_no_options(tiny_env, tmp_path):
    """One owner for every default (issue 27): `GenerateConfig()`, `generate` with no options
    and `load_model().generate` pick the same starts and budget and give the same crystals."""
    import csv
    import json

    from structrepdiff.cli.main import main
    from structrepdiff.pipeline.generate import GenerateConfig, generate
    from structrepdiff.pipeline.sample import SampleConfig

    cli, lib = tmp_path / "cli", tmp_path / "lib"
    assert main(["generate", "--model", "perov_5", "--num", "2", "--out", str(cli),
                 "--no-progress"]) == 0  # fmt: skip
    generate(GenerateConfig(out=lib, sample=SampleConfig(model="perov_5", out=lib / "samples.npz",
                                                         num=2), progress=False))  # fmt: skip
    api = structrepdiff.load_model("perov_5").generate(2, seed=0)

    def rows(folder):
        with open(folder / "summary.csv") as fh:
            return [(r["id"], r["status"], r["loss"], r["space_group"],
                     Structure.from_file(folder / r["cif"])) for r in csv.DictReader(fh)]

    got_cli, got_lib = rows(cli), rows(lib)
    assert [r[:4] for r in got_cli] == [r[:4] for r in got_lib]
    recon = [json.loads((f / "reconstruct_config.json").read_text()) for f in (cli, lib)]
    for r in recon:
        r.pop("representations")  # each run's own samples.npz
    assert recon[0] == recon[1] and recon[0]["config"]["trials"] == 4  # SymmetricConfig()
    assert [c.space_group for c in api] == [int(r[3]) for r in got_cli]
    for c, r in zip(api, got_cli, strict=True):
        assert c.status == r[1] and f"{c.loss:.6e}" == r[2]
        np.testing.assert_allclose(c.structure.lattice.abc, r[4].lattice.abc, atol=1e-5)
