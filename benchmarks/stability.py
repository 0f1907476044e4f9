"""Stability of generated crystals (issue #13, deliverable 5): relax a seeded subset with the
universal potential, then score E_hull and S.U.N. against the cached reference hull.

``--pred`` is anything `load_predictions` reads (e.g. a Table 2 result's predictions.csv.gz,
or a peer's CDVAE CSV). ``--num`` crystals are drawn (seeded) from it, written as one CSV
into ``--work/<tag>/subset.csv.gz``, relaxed into ``--work/<tag>/relaxed`` (resumable) and
scored with `evaluate stability` into ``--out/<tag>/``.

    python benchmarks/stability.py --dataset mp_20 --tag ours_mp_20 --num 200 \
        --pred benchmarks/results/generation/mp_20_cond_minsnr5/predictions.csv.gz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from structrepdiff.data.predictions import load_predictions, save_predictions_csv
from structrepdiff.evaluate.stability import StabilityConfig, evaluate_stability
from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.run import RelaxJob, run_relax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--pred", type=Path, required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--hull", type=Path, default=Path("runs/hull/mp_20_chgnet_hull.json"))
    ap.add_argument("--data-dir")
    ap.add_argument("--work", type=Path, default=Path("runs/stability"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/stability"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = a.work / a.tag
    subset = work / "subset.csv.gz"
    if not subset.exists():
        preds = load_predictions(a.pred)
        rng = np.random.default_rng(a.seed)
        pick = sorted(rng.choice(len(preds), min(a.num, len(preds)), replace=False))
        save_predictions_csv([preds[k] for k in pick], subset)
    t0 = time.perf_counter()
    s = run_relax(RelaxJob(subset, work / "relaxed", RelaxConfig(), a.workers, progress=True))
    t_relax = time.perf_counter() - t0
    m = evaluate_stability(StabilityConfig(work / "relaxed", a.dataset, a.hull, a.out / a.tag,
                                           a.data_dir, force=True))  # fmt: skip
    m["seconds_relax_this_run"] = t_relax
    m["relax_counts_this_run"] = s.counts
    m["source"] = str(a.pred)
    (a.out / a.tag / "metrics.json").write_text(json.dumps(m, indent=1, default=str))
    keys = (
        "n",
        "n_with_e_hull",
        "stable_pct",
        "strict_stable_pct",
        "sun_pct",
        "sun_strict_pct",
        "mean_e_hull",
        "median_e_hull",
        "mean_rmsd",
        "unique_pct",
        "novel_pct",
    )
    print(json.dumps({k: m[k] for k in keys}), flush=True)


if __name__ == "__main__":
    main()
