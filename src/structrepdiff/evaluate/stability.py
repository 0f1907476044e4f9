"""`evaluate stability`: energy above hull, stability and S.U.N. of relaxed crystals (issue #13).

Input is the output folder of `structrepdiff relax` (its ``summary.csv`` carries each
crystal's relaxed energy per atom, so this module needs no potential and no model code) and
a reference hull JSON (`ReferenceHull.save`, e.g. from ``benchmarks/hull_validation.py``).
Uniqueness is among the relaxed crystals, novelty against every available split of the
dataset (or the ones named). Writes ``metrics.json`` and ``per_crystal.csv``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Composition

from structrepdiff.data.io import load_split
from structrepdiff.data.predictions import load_predictions
from structrepdiff.data.run_folder import (
    METRICS,
    PER_CRYSTAL,
    RELAX_CONFIG,
    SUMMARY,
    evaluation_dir,
)
from structrepdiff.evaluate.hull import STABLE_THRESHOLD, ReferenceHull, sun_rates
from structrepdiff.evaluate.novelty import first_of_class, novelty, uniqueness
from structrepdiff.evaluate.result import count_reasons
from structrepdiff.evaluate.run import versions, write_csv, write_json

FIELDS = ("id", "formula", "energy_per_atom", "e_form", "e_hull", "stable", "stable_strict",
          "unique", "novel", "sun", "rmsd", "reason")  # fmt: skip


@dataclass(frozen=True)
class StabilityConfig:
    """``novelty_splits`` empty: every split of the dataset that exists. ``hull`` None: the
    reference hull that ships for ``dataset`` (`bundled_hull_path`)."""

    pred: Path
    dataset: str
    hull: Path | None = None
    out: Path | None = None
    data_dir: str | None = None
    novelty_splits: tuple[str, ...] = ()
    threshold: float = STABLE_THRESHOLD
    workers: int | None = 1
    force: bool = False
    progress: bool = True

    def out_dir(self) -> Path:
        default = Path(self.pred) / evaluation_dir("stability")
        return Path(self.out) if self.out is not None else default


def _relax_rows(pred: Path) -> list[dict[str, str]]:
    path = Path(pred) / SUMMARY
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run 'structrepdiff relax' first")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and "energy_after" not in rows[0]:
        raise ValueError(f"{path} has no energy_after column: it is not a 'relax' output")
    return rows


def _novelty_reference(cfg: StabilityConfig) -> tuple[list[str], list]:
    splits = list(cfg.novelty_splits) or ["train", "val", "test"]
    used, structs = [], []
    for split in splits:
        try:
            loaded = load_split(cfg.dataset, split, cfg.data_dir)
        except FileNotFoundError:
            if cfg.novelty_splits:
                raise
            continue
        used.append(split)
        structs.extend(loaded.structures)
    return used, structs


def crystal_rows(rows: list[dict[str, str]], structures: dict, hull: ReferenceHull) -> list[dict]:
    """Per relaxed crystal: formula, energy, formation energy, E_hull or the reason."""
    out = []
    for r in rows:
        s = structures.get(r["id"])
        row: dict[str, Any] = {"id": r["id"], "rmsd": r.get("rmsd") or None}
        if s is None or not r.get("energy_after"):
            row["reason"] = f"not relaxed: {r.get('status', '?')}: {r.get('reason') or '-'}"
            out.append(row)
            continue
        e = float(r["energy_after"])
        comp = Composition(s.composition)
        ef, eh = hull.formation_energy(comp, e), hull.e_above_hull(comp, e)
        row.update(formula=comp.reduced_formula, energy_per_atom=e, e_form=ef.value,
                   e_hull=eh.value, reason=eh.reason)  # fmt: skip
        out.append(row)
    return out


HULL_CAVEAT = ("optimistic: a hull built from a dataset's splits lacks the rest of Materials "
               "Project, so a composition it does not hold is compared with a hull that is "
               "too high and its E_hull comes out too low")


def resolve_hull(hull: Path | None, dataset: str, potential: str = "chgnet") -> Path:
    """``hull``, else the one that ships for ``dataset`` and ``potential``; ValueError naming
    the way out."""
    if hull is not None:
        return Path(hull)
    from structrepdiff.bundled import bundled_hull_path

    path = bundled_hull_path(dataset, potential)
    if path is None:
        raise ValueError(f"no reference hull ships for {dataset}: give hull (build one with "
                         "`structrepdiff hull build`)")  # fmt: skip
    return path


def check_same_potential(potential: str, hull: ReferenceHull, path: Path) -> None:
    """Refuse a hull built with another potential than the relaxation's: their energies are
    on different scales, so every E_hull would carry the difference."""
    from structrepdiff.relax.potential import PACKAGES

    built = str(hull.provenance.get("potential", "")).split(" ")[0]  # "<package> <version>"
    if built and built != PACKAGES.get(potential, potential):
        raise ValueError(f"the crystals were relaxed with {potential} but the hull {path} was "
                         f"built with {built}: give a hull built with {potential} (`structrepdiff "
                         "hull build` builds one)")  # fmt: skip


def evaluate_stability(cfg: StabilityConfig) -> dict[str, Any]:
    """Score the relaxed crystals at ``cfg.pred`` (module docstring); returns the metrics."""
    out = cfg.out_dir()
    if (out / METRICS).exists() and not cfg.force:
        raise FileExistsError(f"{out / 'metrics.json'} exists; pass `force`=True to overwrite")
    t0 = time.perf_counter()
    relax_cfg = Path(cfg.pred) / RELAX_CONFIG
    relaxation = json.loads(relax_cfg.read_text()) if relax_cfg.exists() else None
    potential = ((relaxation or {}).get("config") or {}).get("potential", "chgnet")
    hull_path = resolve_hull(cfg.hull, cfg.dataset, potential)
    hull = ReferenceHull.load(hull_path)
    check_same_potential(potential, hull, hull_path)
    rows = _relax_rows(cfg.pred)
    preds = {p.id: p.structure for p in load_predictions(cfg.pred)}
    per = crystal_rows(rows, preds, hull)
    structs = [preds.get(r["id"]) if r.get("e_hull") is not None else None for r in per]
    for r, flag in zip(per, first_of_class(uniqueness(structs)["labels"]), strict=True):
        r["unique"] = flag
    used, ref = _novelty_reference(cfg)
    flags = novelty(structs, ref, workers=cfg.workers or 1, progress=cfg.progress)["novel"]
    for r, flag in zip(per, flags, strict=True):
        r["novel"] = flag
        eh = r.get("e_hull")
        r["stable"] = None if eh is None else eh < cfg.threshold
        r["stable_strict"] = None if eh is None else eh <= 0
        r["sun"] = bool(r["stable"] and r["unique"] and flag)
    rates = sun_rates([r.get("e_hull") for r in per], [bool(r["unique"]) for r in per],
                      [bool(r["novel"]) for r in per], cfg.threshold)  # fmt: skip
    rmsd = [float(r["rmsd"]) for r in per if r.get("rmsd")]
    metrics = {
        "protocol": "stability: E_hull against a reference hull; S.U.N. (issue #13)",
        "dataset": cfg.dataset, "pred": str(cfg.pred), "n": len(per),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "versions": versions(),
        "relaxation": relaxation,
        "thresholds_ev_per_atom": {"stable": cfg.threshold, "strict": 0.0},
        "hull": {"path": str(hull_path), "shipped": cfg.hull is None, **hull.provenance,
                 "caveat": HULL_CAVEAT},
        "novelty_splits": used,
        **asdict(rates),
        "unique_pct": 100.0 * sum(bool(r["unique"]) for r in per) / max(len(per), 1),
        "novel_pct": 100.0 * sum(bool(r["novel"]) for r in per) / max(len(per), 1),
        "median_e_hull": float(np.median([r["e_hull"] for r in per if r.get("e_hull")
                                          is not None])) if rates.n_with_e_hull else None,
        "mean_rmsd": float(np.mean(rmsd)) if rmsd else None,
        "reasons": count_reasons(r.get("reason") for r in per),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / PER_CRYSTAL, per, FIELDS)
    write_json(out / METRICS, metrics)
    return metrics
