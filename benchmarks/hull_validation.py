"""Validate the reference hull (issue #13, deliverable 2): held-out test crystals scored as if
generated, each left out of its own reference, against the CSV's DFT ``e_above_hull``.

Builds (or reuses) ``--cache/<dataset>_<potential>_hull.json`` from single-point energies of
every crystal in ``--splits``, then, for ``--num`` seeded test crystals, E_hull of the
crystal's own potential energy with its own two points (potential and virtual) left out.
Writes ``--out/<dataset>_<potential>.json`` (MAE, bias, RMSE, counts, provenance, seconds) and
a per-crystal CSV (id, formula, E_hull, DFT e_above_hull, reason).

    python benchmarks/hull_validation.py --dataset mp_20 --num 500
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Composition

from structrepdiff.evaluate.hull import ReferenceHull
from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.hull_build import build_reference_hull, dataset_energies
from structrepdiff.relax.potential import load_calculator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--splits", nargs="+", default=["val", "test"])
    ap.add_argument("--num", type=int, default=500, help="seeded test crystals to score")
    ap.add_argument("--potential", default="chgnet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path("runs/hull"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/hull"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = RelaxConfig(potential=a.potential)
    calc = load_calculator(cfg.potential, cfg.device)
    t0 = time.perf_counter()
    hull_path = a.cache / f"{a.dataset}_{cfg.potential}_hull.json"
    if hull_path.exists():
        hull = ReferenceHull.load(hull_path)
    else:
        hull = build_reference_hull(a.dataset, calc, cfg, a.cache, a.splits, a.data_dir,
                                    progress=not a.no_progress)  # fmt: skip
        hull.save(hull_path)
    t_build = time.perf_counter() - t0
    rows = [r for r in dataset_energies(a.dataset, ["test"], calc, cfg, a.cache, a.data_dir,
                                        progress=False)
            if r["split"] == "test" and r.get("e_hull_dft")]  # fmt: skip
    rng = np.random.default_rng(a.seed)
    pick = sorted(rng.choice(len(rows), min(a.num, len(rows)), replace=False))
    per, t1 = [], time.perf_counter()
    for k in pick:
        r = rows[k]
        if not r.get("energy_per_atom"):
            per.append(
                {
                    "id": r["id"],
                    "formula": r.get("formula", ""),
                    "e_hull": "",
                    "e_hull_dft": r["e_hull_dft"],
                    "reason": r.get("reason") or "no energy",
                }
            )
            continue
        res = hull.e_above_hull(Composition(r["formula"]), float(r["energy_per_atom"]),
                                exclude=frozenset({r["id"]}))  # fmt: skip
        per.append({"id": r["id"], "formula": r["formula"],
                    "e_hull": "" if res.value is None else f"{res.value:.6f}",
                    "e_hull_dft": r["e_hull_dft"], "reason": res.reason or ""})  # fmt: skip
    ok = [p for p in per if p["e_hull"]]
    err = np.array([float(p["e_hull"]) - float(p["e_hull_dft"]) for p in ok])
    result = {"dataset": a.dataset, "n_scored": len(per), "n_with_e_hull": len(ok),
              "mae_mev": float(np.abs(err).mean() * 1000) if len(ok) else None,
              "bias_mev": float(err.mean() * 1000) if len(ok) else None,
              "rmse_mev": float(np.sqrt((err**2).mean()) * 1000) if len(ok) else None,
              "stable_agreement_pct": 100.0 * float(np.mean([(float(p["e_hull"]) < 0.1) == (
                  float(p["e_hull_dft"]) < 0.1) for p in ok])) if ok else None,
              "reasons": sorted({p["reason"] for p in per if p["reason"]}),
              "provenance": hull.provenance, "seed": a.seed,
              "protocol": "test crystals' single-point energies, each left out of its own "
                          "reference (its potential and virtual points)",
              "seconds": {"build": t_build, "score": time.perf_counter() - t1},
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": "2 vCPU, 1 torch thread"}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    stem = a.out / f"{a.dataset}_{cfg.potential}"
    with open(f"{stem}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "formula", "e_hull", "e_hull_dft", "reason"])
        w.writeheader()
        w.writerows(per)
    Path(f"{stem}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}), flush=True)


if __name__ == "__main__":
    main()
