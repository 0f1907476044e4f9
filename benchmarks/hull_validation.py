"""Validate the reference hull (issue #13, deliverable 2): held-out test crystals scored as if
generated, each left out of its own reference, against the CSV's DFT ``e_above_hull``.

Builds (or reuses) ``--cache/<dataset>_<potential>_hull.json`` from single-point energies of
every crystal in ``--splits``, then, for ``--num`` seeded test crystals, E_hull of the
crystal's own potential energy in two rows: ``own_point_out`` leaves out the crystal's
potential point (its virtual point, the DFT hull at its composition, stays: what a generated
crystal of a known composition is scored against); ``both_out`` leaves out both, which
measures how incomplete the val + test hull is where a composition has no other crystal.
Writes ``--out/<dataset>_<potential>.json`` (MAE, bias, RMSE per row, provenance, seconds)
and a per-crystal CSV (id, formula, both E_hull, DFT e_above_hull, reason).

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
from structrepdiff.relax.hull_build import build_reference_hull, dataset_energies, virtual_id
from structrepdiff.relax.potential import load_calculator


def errors(per: list[dict], key: str) -> dict:
    """MAE, bias and RMSE (meV/atom) of E_hull ``key`` against DFT, and agreement on
    "stable" (E_hull < 0.1 eV/atom)."""
    ok = [p for p in per if p[key]]
    if not ok:
        return {"n": 0}
    e = np.array([float(p[key]) for p in ok])
    dft = np.array([float(p["e_hull_dft"]) for p in ok])
    err = e - dft
    return {"n": len(ok), "mae_mev": float(np.abs(err).mean() * 1000),
            "bias_mev": float(err.mean() * 1000),
            "rmse_mev": float(np.sqrt((err**2).mean()) * 1000),
            "median_abs_mev": float(np.median(np.abs(err)) * 1000),
            "stable_agreement_pct": 100.0 * float(np.mean((e < 0.1) == (dft < 0.1)))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--splits", nargs="+", default=["val", "test"])
    ap.add_argument("--fit-splits", nargs="*", default=["val"],
                    help="splits μ is fitted on (none: μ from elemental crystals); the test "
                         "crystals scored here stay out of the fit")  # fmt: skip
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
    fit = "_".join(a.fit_splits) or "nofit"
    hull_path = a.cache / f"{a.dataset}_{cfg.potential}_hull.json"
    hull = ReferenceHull.load(hull_path) if hull_path.exists() else None
    if hull is None or hull.provenance.get("fit") != fit:
        hull = build_reference_hull(a.dataset, calc, cfg, a.cache, a.splits, a.data_dir,
                                    fit_splits=a.fit_splits,
                                    progress=not a.no_progress)  # fmt: skip
        hull.provenance["fit"] = fit
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
        p = {
            "id": r["id"],
            "formula": r.get("formula", ""),
            "e_hull_dft": r["e_hull_dft"],
            "reason": r.get("reason") or ("" if r.get("energy_per_atom") else "no energy"),
        }
        for name, out in (("own_point_out", {r["id"]}),
                          ("both_out", {r["id"], virtual_id(r["id"])})):  # fmt: skip
            res = (
                None
                if p["reason"]
                else hull.e_above_hull(
                    Composition(r["formula"]), float(r["energy_per_atom"]), exclude=frozenset(out)
                )
            )
            p[name] = "" if res is None or res.value is None else f"{res.value:.6f}"
            p["reason"] = p["reason"] or (res.reason or "" if res is not None else "")
        per.append(p)
    result = {"dataset": a.dataset, "n_scored": len(per), "seed": a.seed,
              "own_point_out": errors(per, "own_point_out"), "both_out": errors(per, "both_out"),
              "reasons": sorted({p["reason"] for p in per if p["reason"]}),
              "provenance": hull.provenance,
              "protocol": "test crystals' single-point energies; own_point_out: the crystal's "
                          "potential point left out of the hull, its DFT virtual point kept; "
                          "both_out: both left out",
              "seconds": {"build": t_build, "score": time.perf_counter() - t1},
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": "2 vCPU, 1 torch thread"}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    stem = a.out / f"{a.dataset}_{cfg.potential}_fit_{fit}"
    with open(f"{stem}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "formula", "own_point_out", "both_out",
                                           "e_hull_dft", "reason"])  # fmt: skip
        w.writeheader()
        w.writerows(per)
    Path(f"{stem}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("n_scored", "own_point_out", "both_out")}), flush=True)


if __name__ == "__main__":
    main()
