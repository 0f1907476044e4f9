"""Calibrate the convergence threshold: the loss of true crystals with every atom displaced.

For seeded crystals of a split, every atom is moved by exactly ``d`` Å in a random direction
and the reconstruction loss against the crystal's own R is computed. The median at d = 0.01 Å
is the loss that "0.01 Å off" means for that dataset (issue #3); quantiles by atom count show
how it grows with the cell.

    python studies/calibrate_threshold.py --n 200 --split val
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import descriptor_loss, true_targets
from structrepdiff.representation.encode import Representation


def displaced_losses(structures, ids, rep, d: float, seed: int) -> np.ndarray:
    """(n,) loss of each crystal with every atom moved by d Å in a random direction."""
    _, s, pos = true_targets(ids, structures, rep, torch.float64)
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(pos.shape, generator=g, dtype=torch.float64)
    moved = pos + d * u / u.norm(dim=1, keepdim=True)
    cfg = ReconstructConfig()
    with torch.no_grad():
        return descriptor_loss(moved, s, rep.ead, None, cfg.d_min_weight).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["perov_5", "carbon_24", "mp_20"])
    p.add_argument("--split", default="val")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--preset", default="small")
    p.add_argument("--displacements", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/threshold.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    result = {"split": args.split, "n": args.n, "preset": args.preset, "seed": args.seed}
    for ds in args.datasets:
        info = get_dataset(ds)
        rep = Representation(get_preset(args.preset), info.atomic_numbers, info.n_max)
        ids, structs = seeded_subset(
            load_split(ds, args.split, args.data_dir), args.n, args.seed, stratified=ds == "mp_20"
        )
        sizes = np.array([len(s) for s in structs])
        result[ds] = {}
        for d in args.displacements:
            loss = np.concatenate(
                [
                    displaced_losses(structs[k : k + 32], ids[k : k + 32], rep, d, args.seed)
                    for k in range(0, len(ids), 32)
                ]
            )
            row = {
                "median": float(np.median(loss)),
                "q10_q90": np.quantile(loss, [0.1, 0.9]).tolist(),
                "median_by_size": {
                    f"{lo}-{hi}": float(np.median(loss[(sizes >= lo) & (sizes <= hi)]))
                    for lo, hi in ((1, 6), (7, 12), (13, 24))
                    if ((sizes >= lo) & (sizes <= hi)).any()
                },
            }
            result[ds][str(d)] = row
            print(ds, d, json.dumps(row))
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
