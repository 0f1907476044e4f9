"""Wall time of `novelty` (StructureMatcher against the training split) with 1 and with N
worker processes, in the same run, on the crystals of a Table 2 result folder.

    python benchmarks/novelty_speed.py \\
        --pred benchmarks/results/generation/carbon_24_uncond_ddim100/predictions.csv.gz \\
        --dataset carbon_24 --n 300 --workers 1 2 --out benchmarks/results/novelty_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from structrepdiff.data.atomic import atomic_write
from structrepdiff.data.io import load_split
from structrepdiff.data.predictions import load_predictions
from structrepdiff.evaluate import novelty


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pred", required=True, type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="val", help="novelty reference (the training split)")
    ap.add_argument("--n", type=int, default=300, help="first N predictions")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--data-dir")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    if a.out.exists() and not a.force:
        raise SystemExit(f"{a.out} exists; pass --force to overwrite")
    gen = [p.structure for p in load_predictions(a.pred)][: a.n]
    ref = load_split(a.dataset, a.split, a.data_dir, progress=False).structures
    runs = []
    for w in a.workers:
        t0 = time.perf_counter()
        res = novelty(gen, ref, workers=w, progress=True)
        runs.append({"workers": w, "seconds": round(time.perf_counter() - t0, 1),
                     "novelty": res["novelty"], "n": res["n"]})  # fmt: skip
        print(runs[-1], flush=True)
    out = {"pred": str(a.pred), "dataset": a.dataset, "reference_split": a.split,
           "n_reference": len(ref), "runs": runs, "machine": f"{os.cpu_count()} CPU cores",
           "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    atomic_write(a.out, lambda p: p.write_text(json.dumps(out, indent=1)), force=True)


if __name__ == "__main__":
    main()
