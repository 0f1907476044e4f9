"""Batch size as a throughput lever (issue #16, deliverable 2): the same seeded test crystals
reconstructed with ``TEMPLATE_BUDGET`` and templates from the training split at several batch
sizes, in one run, checking that every batch size gives the same statuses and losses (each
crystal has its own generator). Writes ``--out/<dataset>.json``.

    python benchmarks/batch_size_lever.py --dataset mp_20 --num 64 --batch-sizes 4 8 16 32
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
from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.features import save_features
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET
from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction
from structrepdiff.reconstruct.templates import auto_templates


def _rows(out: Path) -> dict[str, tuple[str, float]]:
    with open(out / "summary.csv", newline="") as fh:
        return {r["id"]: (r["status"], float(r["loss"])) for r in csv.DictReader(fh)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--work", type=Path, default=Path("runs/batch_size_lever"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/batch_size_lever"))
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
    result: dict = {"seconds": {}, "same_status": {}, "max_loss_difference": {}}
    first = None
    for b in a.batch_sizes:
        out = work / f"batch{b}"
        job = ReconstructJob(
            feats, out, TEMPLATE_BUDGET, batch_size=b, progress=False, templates=templates
        )
        t0 = time.perf_counter()
        run_reconstruction(job)
        result["seconds"][b] = round(time.perf_counter() - t0, 1)
        rows = _rows(out)
        first = first or rows
        result["same_status"][b] = all(rows[k][0] == first[k][0] for k in first)
        result["max_loss_difference"][b] = max(abs(rows[k][1] - first[k][1]) for k in first)
        print(b, result["seconds"][b], result["same_status"][b], flush=True)
    result.update({"dataset": a.dataset, "n": a.num, "seed": a.seed, "split": "test (seeded)",
                   "config": "TEMPLATE_BUDGET, templates from the training split",
                   "machine": "2 vCPU, 1 torch thread",
                   "date": datetime.now(UTC).isoformat(timespec="seconds")})  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.dataset}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
