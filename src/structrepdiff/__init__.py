"""StructRepDiff: crystal generation by diffusion on invariant EAD-based representations.

    import structrepdiff
    model = structrepdiff.load_model("perov_5")          # bundled name or checkpoint path
    crystals = model.generate(4, seed=0)                  # list[Crystal] with pymatgen Structures
    result = structrepdiff.evaluate(crystals, dataset="perov_5")   # .metrics, .rows

The names below load on first use, so importing one stage (e.g. the evaluator) does not
import the others.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Crystal": "structrepdiff.api",
    "Model": "structrepdiff.api",
    "featurize": "structrepdiff.api",
    "load_model": "structrepdiff.api",
    "Evaluation": "structrepdiff.evaluate.run",
    "evaluate_structures": "structrepdiff.evaluate.run",
}
__all__ = ["__version__", "evaluate", *_LAZY]


def __getattr__(name: str):
    if name == "evaluate":  # the package itself, callable: evaluate(structures, dataset=...)
        return importlib.import_module("structrepdiff.evaluate")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'structrepdiff' has no attribute {name!r}")
