"""Speed-up of reconstruction over Dask workers (issue #16, deliverable 4): the same seeded
test crystals reconstructed serially, on ``local:1`` and on ``local:2``, in one run, checking
that every variant gives the serial crystals. Writes ``--out/<dataset>.json``.

    python benchmarks/scheduler_speedup.py --dataset perov_5 --num 48
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

import structrepdiff
from structrepdiff.cluster import open_client
from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.features import save_features
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET
from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction
from structrepdiff.reconstruct.templates import auto_templates


def _rows(out: Path) -> dict[str, tuple[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {r["id"]: (r["status"], r["loss"]) for r in csv.DictReader(fh)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="perov_5")
    ap.add_argument("--num", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=["serial", "local:1", "local:2"])
    ap.add_argument("--work", type=Path, default=Path("runs/scheduler_speedup"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/scheduler_speedup"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    ids, structures = seeded_subset(load_split(a.dataset, "test"), a.num, a.seed)
    fs = structrepdiff.featurize(structures, dataset=a.dataset, ids=ids)
    work = a.work / a.dataset
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    feats = work / "vectors.npz"
    save_features(fs, feats)
    templates, _ = auto_templates(a.dataset)
    seconds, same = {}, {}
    for v in a.variants:
        out = work / v.replace(":", "_")
        t0 = time.perf_counter()
        with open_client(None if v == "serial" else v) as client:
            t1 = time.perf_counter()
            job = ReconstructJob(
                feats, out, TEMPLATE_BUDGET, batch_size=8, progress=False, templates=templates
            )
            run_reconstruction(job, client)
        seconds[v] = {"total": round(time.perf_counter() - t0, 1),
                      "after_start": round(time.perf_counter() - t1, 1)}  # fmt: skip
        same[v] = _rows(out) == _rows(work / "serial") if "serial" in seconds else None
        print(v, seconds[v], flush=True)
    base = seconds[a.variants[0]]["total"]
    result = {"dataset": a.dataset, "split": "test (seeded subset)", "n": a.num, "seed": a.seed,
              "config": "TEMPLATE_BUDGET, templates from the training split, batch 8",
              "seconds": seconds, "speedup_vs_first": {v: round(base / s["total"], 2)
                                                       for v, s in seconds.items()},
              "identical_to_serial": same, "machine": "2 vCPU, 1 torch thread per process",
              "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.dataset}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
