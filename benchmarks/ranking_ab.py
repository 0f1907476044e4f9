"""Template ranking with the batched neighbour list (issue #16, deliverable 2 lever), A/B in
one run: `template_starts` (≤ 256 starts per target, loss at each start) for seeded test
crystals, once with the neighbour list's `auto` method (one padded pass for the starts of a
target: same cell, same atoms) and once forced per crystal; alternating, ``--repeats`` times,
medians. Both rank identically (checked here). Writes ``--out``.

    python benchmarks/ranking_ab.py --datasets perov_5 mp_20 carbon_24 --n 16
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import structrepdiff
import structrepdiff.geometry.neighbors as nb
from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET
from structrepdiff.reconstruct.run import decodable_targets, template_starts
from structrepdiff.reconstruct.templates import TemplateSet, auto_templates


def timed(targets, templates, ead, per_crystal: bool):
    real = nb._alike
    if per_crystal:
        nb._alike = lambda counts, reach: False
    try:
        t0 = time.perf_counter()
        starts = template_starts(targets, templates, ead, TEMPLATE_BUDGET)
        return time.perf_counter() - t0, starts
    finally:
        nb._alike = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["perov_5", "mp_20", "carbon_24"])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ranking_ab.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for ds in a.datasets:
        ids, structures = seeded_subset(load_split(ds, "test"), a.n, 0)
        fs = structrepdiff.featurize(structures, dataset=ds, ids=ids)
        targets = decodable_targets(fs)
        templates = TemplateSet.load(auto_templates(ds)[0])
        sec = {True: [], False: []}
        same = True
        for _ in range(a.repeats):
            got = {}
            for per in (True, False):
                s, got[per] = timed(targets, templates, fs.rep.ead, per)
                sec[per].append(s)
            for x, y in zip(got[True], got[False], strict=True):
                same &= len(x) == len(y) and all(
                    np.array_equal(p, q) for p, q in zip(x, y, strict=True))  # fmt: skip
        med = {("per_crystal" if p else "auto"): float(np.median(v)) for p, v in sec.items()}
        rows.append({"dataset": ds, "targets": len(targets),
                     "seconds_per_target": {k: round(v / len(targets), 4) for k, v in med.items()},
                     "speedup": round(med["per_crystal"] / med["auto"], 2),
                     "same_ranking": bool(same)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    a.out.write_text(json.dumps({"rows": rows, "machine": "2 vCPU, 1 torch thread", "seed": 0,
                                 "split": "test (seeded)", "repeats": a.repeats,
                                 "date": datetime.now(UTC).isoformat(timespec="seconds")},
                                indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
