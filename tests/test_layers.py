"""The layout the pipeline shows: the diffusion core sees only tensors and no library module
imports the CLI (``python -m structrepdiff`` is the CLI). The evaluator's own boundary test
is in test_evaluate_metrics.py."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "structrepdiff"


def _imported(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(sorted(sys.modules))"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return eval(out.stdout.strip().splitlines()[-1])  # a list literal we printed


def test_diffusion_imports_only_torch_and_numpy():
    mods = [p.stem for p in (SRC / "diffusion").glob("*.py") if p.stem != "__init__"]
    loaded = _imported("; ".join(f"import structrepdiff.diffusion.{m}" for m in mods))
    ours = [m for m in loaded if m.startswith("structrepdiff.")]
    assert ours and all(m.startswith("structrepdiff.diffusion") for m in ours), ours
    assert not [m for m in loaded if m.split(".")[0] in ("pymatgen", "ase", "pandas", "scipy")]


def _imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_nothing_outside_the_cli_imports_it():
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if "cli" not in p.relative_to(SRC).parts and p.name != "__main__.py"
                 and any(n.startswith("structrepdiff.cli") for n in _imports_of(p))]  # fmt: skip
    assert offenders == []


def test_diffusion_sources_name_no_other_layer():
    # the subprocess test sees what is imported at load time; this one also sees imports
    # inside functions
    for p in (SRC / "diffusion").glob("*.py"):
        ours = {n for n in _imports_of(p) if n.startswith("structrepdiff")}
        assert all(n.startswith("structrepdiff.diffusion") for n in ours), (p.name, ours)
