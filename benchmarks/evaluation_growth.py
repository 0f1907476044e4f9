"""Evaluation time against the number of crystals (issue #16, deliverable 5): `evaluate
generation` in memory on the first N of a bundled model's Table 2 predictions, with the
reference split's fingerprints cached (the first call builds the cache and is not timed),
one worker. Reports each stage's seconds from metrics.json. MP-20 has many formulas (little
to compare per crystal); Carbon-24 is one formula, where uniqueness and novelty compare every
pair (the quadratic case).

    python benchmarks/evaluation_growth.py --num 100 200 400
    python benchmarks/evaluation_growth.py --dataset carbon_24 --num 100 200 400 \
        --pred benchmarks/results/generation/carbon_24_uncond_ddim100/predictions.csv.gz \
        --out benchmarks/results/evaluation_growth_carbon_24.json
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import structrepdiff
from structrepdiff.data.predictions import load_predictions

PRED = Path("benchmarks/results/generation/mp_20_cond_minsnr5/predictions.csv.gz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, nargs="+", default=[100, 200, 400])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--pred", type=Path, default=PRED)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/evaluation_growth.json"))
    a = ap.parse_args()
    preds = load_predictions(a.pred)
    structrepdiff.evaluate([p.structure for p in preds[:10]], dataset=a.dataset)  # warm the cache
    rows = []
    for n in a.num:
        t0 = time.perf_counter()
        m = structrepdiff.evaluate([p.structure for p in preds[:n]], dataset=a.dataset).metrics
        rows.append({"crystals": n, "seconds": round(time.perf_counter() - t0, 1),
                     "stages": m["seconds"]})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    a.out.write_text(
        json.dumps(
            {
                "dataset": a.dataset,
                "pred": str(a.pred),
                "rows": rows,
                "machine": "2 vCPU, 1 worker",
                "date": date,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
