"""Batched against per-crystal neighbour list (issue #16 lever), A/B in one run: the time of
one rebuild and of 30 Adam steps (threshold 0) for the first ``--n`` test crystals of each
dataset as one batch, small preset, float32, one thread; each variant ``--repeats`` times,
alternating. The two give identical pairs (tests/test_geometry.py).

    python benchmarks/neighbour_list_ab.py --n 8
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

import structrepdiff.geometry.neighbors as nb
from structrepdiff.data.io import load_split
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import descend, true_targets
from structrepdiff.representation.encode import Representation


def timed(fn, per_crystal: bool) -> float:
    old = nb._MAX_CANDIDATES
    nb._MAX_CANDIDATES = 0 if per_crystal else old
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        nb._MAX_CANDIDATES = old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["perov_5", "carbon_24", "mp_20"])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/neighbour_list_ab.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    rows = []
    for ds in a.datasets:
        info = get_dataset(ds)
        structures = load_split(ds, "test", limit=a.n).structures
        rep = Representation(get_preset("small"), info.atomic_numbers, info.n_max)
        _, s, true = true_targets([str(k) for k in range(a.n)], structures, rep, torch.float32)
        pos = true + 0.3 * torch.randn(true.shape, generator=torch.Generator().manual_seed(0))
        cfg = ReconstructConfig(steps=30, threshold=0.0)
        c = Crystals(pos, s.numbers, s.cell, s.batch)
        res = {"rebuild": {True: [], False: []}, "steps30": {True: [], False: []}}
        for _ in range(a.repeats):
            for per in (True, False):
                res["rebuild"][per].append(timed(lambda c=c: nb.neighbor_list(c, 6.5), per))
                res["steps30"][per].append(
                    timed(lambda p=pos, s=s, e=rep.ead, k=cfg: descend(p, s, e, k), per)
                )
        med = {k: {("per_crystal" if p else "batched"): sorted(v)[len(v) // 2]
                   for p, v in d.items()} for k, d in res.items()}  # fmt: skip
        row = {"dataset": ds, "crystals": a.n, **{f"{k}_s": v for k, v in med.items()},
               "rebuild_ratio": round(med["rebuild"]["per_crystal"]
                                      / med["rebuild"]["batched"], 2),
               "steps30_ratio": round(med["steps30"]["per_crystal"]
                                      / med["steps30"]["batched"], 2)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    a.out.write_text(json.dumps({"rows": rows, "machine": "2 vCPU, 1 torch thread"}, indent=1))


if __name__ == "__main__":
    main()
