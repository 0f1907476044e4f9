"""The default path on a user's own crystals (issue #15, deliverable 2): featurize with the
default preset, `structrepdiff reconstruct` with no options (templates of the training split,
`TEMPLATE_BUDGET`), `structrepdiff evaluate reconstruction` — match %, converged % and seconds
per crystal on seeded test crystals. Results go to ``--out/<dataset>.json``; the
reconstruction resumes from ``--work``.

    python benchmarks/defaults.py --dataset perov_5 --num 100
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

import structrepdiff
from structrepdiff.cli.main import main as cli
from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.features import save_features


def run(dataset: str, num: int, seed: int, work: Path, out: Path, data_dir: str | None) -> dict:
    ids, structures = seeded_subset(load_split(dataset, "test", data_dir), num, seed)
    work.mkdir(parents=True, exist_ok=True)
    feats, rec = work / "test_subset.npz", work / "reconstructed"
    if not feats.exists():
        fs = structrepdiff.featurize(structures, dataset=dataset, ids=ids)
        fs.source = {"dataset": dataset, "split": "test", "seed": seed, "num": num}
        save_features(fs, feats)
    t0 = time.perf_counter()
    rc = cli(["reconstruct", "--representations", str(feats), "--out", str(rec), "--no-progress"])
    seconds_this_run = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"reconstruct exited {rc}")
    ev = rec / "evaluation_reconstruction"
    cli(["evaluate", "reconstruction", "--pred", str(rec), "--dataset", dataset, "--workers", "1",
         "--force", "--no-progress"] + (["--data-dir", data_dir] if data_dir else []))  # fmt: skip
    m = json.loads((ev / "metrics.json").read_text())
    with open(rec / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cfg = json.loads((rec / "reconstruct_config.json").read_text())
    result = {
        "dataset": dataset, "split": "test (seeded subset)", "n": len(rows), "seed": seed,
        "match_pct": m["match_rate_pct"], "rmse": m["rmse"],
        "match_any_pct": m["match_rate_any_pct"],
        "converged_pct": 100.0 * sum(r["status"] == "converged" for r in rows) / len(rows),
        "seconds_per_crystal": float(np.mean([float(r["seconds"]) for r in rows
                                              if r.get("seconds")])),
        "seconds_this_run": round(seconds_this_run, 1),
        "reconstruct_config": cfg, "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2 vCPU, 1 torch thread",
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{dataset}.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir")
    ap.add_argument("--work", type=Path, default=Path("runs/defaults"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/defaults"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    r = run(a.dataset, a.num, a.seed, a.work / a.dataset, a.out, a.data_dir)
    print(json.dumps({k: v for k, v in r.items() if k != "reconstruct_config"}), flush=True)


if __name__ == "__main__":
    main()
