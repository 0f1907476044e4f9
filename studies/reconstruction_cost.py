"""Cost table of reconstruction: per preset and setting, on the same crystals, in one run.

For one dataset's seeded test subset (MP-20: equal shares of N <= 6, 7-12, >= 13), every
setting reconstructs the same crystals (batch 8, float32) and reports crystal-steps per second,
seconds per crystal, converged % and match %. Settings finished earlier are read back from the
JSON, so an interrupted run resumes setting by setting.

    python studies/reconstruction_cost.py --dataset mp_20 --n 18
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import Target, reconstruct_batch
from structrepdiff.reconstruct.run import outcome_structure, template_starts
from structrepdiff.reconstruct.templates import cached_templates
from structrepdiff.representation.decode import decode
from structrepdiff.representation.encode import Representation, encode_structures

# name: (preset, templates?, trials, hops, steps)
SETTINGS = {
    "small random 2x5x300": ("small", False, 2, 5, 300),
    "small templates 2x5x300": ("small", True, 2, 5, 300),
    "small templates 1x2x300": ("small", True, 1, 2, 300),
    "paper templates 1x2x300": ("paper", True, 1, 2, 300),
    "paper random 1x2x300": ("paper", False, 1, 2, 300),
}


def measure(structures, ids, dataset, setting, tset, batch_size: int) -> dict:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    preset, use_templates, trials, hops, steps = setting
    info = get_dataset(dataset)
    rep = Representation(get_preset(preset), info.atomic_numbers, info.n_max)
    cfg = ReconstructConfig(trials=trials, hops=hops, steps=steps, seed=0)
    matcher = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
    decoded = decode(encode_structures(structures, rep), rep)
    targets = [Target(i, d.numbers, d.lattice, d.ead_max, d.ead_min, d.d_min)
               for i, d in zip(ids, decoded, strict=True)]  # fmt: skip
    seconds, n_steps, conv, match = 0.0, 0, 0, 0
    for k in tqdm(range(0, len(targets), batch_size), desc=f"{preset} {trials}x{hops}x{steps}"):
        batch = targets[k : k + batch_size]
        t0 = time.perf_counter()
        starts = template_starts(batch, tset, rep.ead, cfg) if use_templates else None
        outcomes = reconstruct_batch(batch, rep.ead, cfg, starts)
        seconds += time.perf_counter() - t0
        for o, s in zip(outcomes, structures[k : k + batch_size], strict=True):
            n_steps += o.steps
            conv += o.converged
            pred = outcome_structure(o)
            match += matcher.get_rms_dist(pred, s) is not None
    n = len(targets)
    return {
        "crystal_steps_per_s": round(n_steps / seconds, 1), "s_per_crystal": round(seconds / n, 2),
        "converged": round(100 * conv / n, 1), "match": round(100 * match / n, 1),
        "mean_steps": round(n_steps / n),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mp_20")
    p.add_argument("--n", type=int, default=18)
    p.add_argument("--templates", default="val", help="split the templates come from")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/reconstruction_cost"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.dataset}.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    ids, structures = seeded_subset(
        load_split(args.dataset, "test", args.data_dir),
        args.n,
        0,
        stratified=args.dataset == "mp_20",
    )
    tset = cached_templates(args.dataset, args.templates, args.data_dir)
    for name in args.settings:
        if name in result:
            continue
        row = measure(structures, ids, args.dataset, SETTINGS[name], tset, args.batch_size)
        result[name] = {
            **row,
            "n": len(ids),
            "mean_atoms": float(np.mean([len(s) for s in structures])),
            "threads": args.threads,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} CPU, torch {torch.__version__}",
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, path)
        print(name, json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
