"""Per-crystal evaluation over many crystals, in parallel, with cached reference fingerprints.

`evaluate_rows` turns crystals (``Prediction``s: id, structure or None, reason) into one row
each: validity with reasons, both fingerprints, density, number of elements and space group.
`reference_table` does the same for a dataset split once and caches the arrays on disk
(keyed by the split file's sha256 and `CACHE_VERSION`), since every evaluation against that
split needs them. Work is spread over ``workers`` processes (spawned, so a parent that has
used torch cannot deadlock them) with a progress bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from structrepdiff.data.atomic import atomic_write
from structrepdiff.data.paths import default_cache_dir, file_sha256
from structrepdiff.data.predictions import Prediction
from structrepdiff.evaluate.crystal import evaluate_crystal
from structrepdiff.evaluate.fingerprints import COMP_FP_DIM, STRUCT_FP_DIM
from structrepdiff.evaluate.parallel import parallel_map
from structrepdiff.evaluate.structures import density, n_elements
from structrepdiff.evaluate.symmetry import space_group

CACHE_VERSION = 1  # bump when a per-crystal metric changes


def evaluate_prediction(pred: Prediction) -> dict[str, Any]:
    """One row: id, validity and reasons, fingerprints (arrays or None), density (g/cm³),
    number of elements and atoms, reduced formula, space group (number, symbol) or reason."""
    ev = evaluate_crystal(pred.structure, build_reason=pred.reason)
    s = pred.structure
    row: dict[str, Any] = {
        "id": pred.id,
        "valid": ev.valid,
        "struct_valid": ev.struct_valid,
        "struct_reason": ev.struct_reason,
        "comp_valid": ev.comp_valid,
        "comp_reason": ev.comp_reason,
        "fp_reason": ev.fp_reason,
        "struct_fp": ev.struct_fp,
        "comp_fp": ev.comp_fp,
        "formula": None if s is None else s.composition.reduced_formula,
        "n_atoms": None if s is None else len(s),
        "n_elements": None if s is None else n_elements(s),
        "density": None,
        "spacegroup": None,
        "spacegroup_symbol": None,
        "spacegroup_reason": "no structure" if s is None else None,
    }
    if s is not None and ev.struct_valid:
        row["density"] = density(s)
    if s is not None:
        sg = space_group(s)
        if sg.ok:
            row["spacegroup"], row["spacegroup_symbol"] = sg.value
        else:
            row["spacegroup_reason"] = sg.reason
    return row


def evaluate_rows(
    preds: Sequence[Prediction],
    workers: int | None = None,
    progress: bool = True,
    desc: str = "evaluate",
) -> list[dict[str, Any]]:
    """`evaluate_prediction` for each prediction, in input order (see `parallel_map`); a
    crystal whose evaluation kills its worker is an invalid crystal with that reason."""
    return parallel_map(evaluate_prediction, preds, workers, progress, desc,
                        on_crash=crashed_prediction)  # fmt: skip


def crashed_prediction(pred: Prediction, why: str) -> dict[str, Any]:
    """The row of a prediction whose evaluation killed its worker (no analysis is retried)."""
    return evaluate_prediction(Prediction(pred.id, None, why))


def stack_fps(rows: Sequence[dict[str, Any]], key: str, dim: int) -> np.ndarray:
    """(n, dim) float64 fingerprints of ``rows``; NaN rows where there is none."""
    out = np.full((len(rows), dim), np.nan)
    for k, r in enumerate(rows):
        if r[key] is not None:
            out[k] = r[key]
    return out


def unstack_fps(arr: np.ndarray) -> list[np.ndarray | None]:
    """Inverse of `stack_fps`: None for the all-NaN rows."""
    return [None if np.isnan(row).all() else row for row in arr]


def reference_cache_path(source: Path, cache_dir: Path | None = None) -> Path:
    """Where the reference table of the split file ``source`` is cached (by its sha256)."""
    key = f"{file_sha256(source)[:20]}_v{CACHE_VERSION}"
    return (cache_dir or default_cache_dir()) / "eval" / f"reference_{key}.npz"


def cached_reference(source: Path, cache_dir: Path | None = None) -> dict[str, np.ndarray] | None:
    """The cached `reference_table` of ``source``, or None: lets a caller skip parsing the
    split when its fingerprints are already known."""
    return _load_table(reference_cache_path(source, cache_dir))


def _load_table(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def reference_table(
    preds: Sequence[Prediction],
    source: Path,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Arrays for the reference crystals ``preds`` read from the file ``source``: ids, valid,
    struct_fp (n, 61), comp_fp (n, 132), density, n_elements (NaN where undefined). Cached in
    ``cache_dir/eval`` under the file's sha256; a cache whose ids differ is recomputed."""
    path = reference_cache_path(source, cache_dir)  # hashes the split file once
    ids = np.array([p.id for p in preds])
    table = _load_table(path)
    if table is not None and np.array_equal(table["ids"], ids):
        return table
    rows = evaluate_rows(preds, workers, progress, desc=f"reference {source.name}")
    table = {
        "ids": ids,
        "valid": np.array([r["valid"] for r in rows]),
        "struct_fp": stack_fps(rows, "struct_fp", STRUCT_FP_DIM),
        "comp_fp": stack_fps(rows, "comp_fp", COMP_FP_DIM),
        "density": np.array([np.nan if r["density"] is None else r["density"] for r in rows]),
        "n_elements": np.array(
            [np.nan if r["n_elements"] is None else r["n_elements"] for r in rows]
        ),
    }
    save_npz_atomic(path, table)
    return table


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez ``arrays`` to ``path`` atomically."""
    atomic_write(path, lambda p: np.savez(p, **arrays), force=True, suffix=".npz")
