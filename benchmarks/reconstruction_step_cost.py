"""Cost of one reconstruction step per EAD preset: crystal-steps per second on real targets.

For each dataset and preset, the first --n test crystals are encoded, decoded and given
random starting positions; the script then times --steps Adam steps of the batched descent
(threshold 0, so no crystal stops early). Both presets run on the same crystals in one process.

    python benchmarks/reconstruction_step_cost.py --n 8 --steps 30
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from structrepdiff.data.io import load_split
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import (
    Target,
    _draw,
    _stack,
    crystal_generator,
    descend,
)
from structrepdiff.representation.decode import decode
from structrepdiff.representation.encode import Representation, encode_structures


def step_cost(dataset: str, preset: str, n: int, steps: int, dtype: str) -> dict:
    info = get_dataset(dataset)
    structures = load_split(dataset, "test", limit=n).structures
    rep = Representation(get_preset(preset), info.atomic_numbers, info.n_max)
    targets = [
        Target(str(k), d.numbers, d.lattice, d.ead_max, d.ead_min, d.d_min)
        for k, d in enumerate(decode(encode_structures(structures, rep), rep))
    ]
    cfg = ReconstructConfig(steps=steps, threshold=0.0, dtype=dtype)
    s = _stack(targets, torch.float32 if dtype == "float32" else torch.float64)
    start = _draw(s, [crystal_generator(0, t.id) for t in targets], fractional=True)
    t0 = time.perf_counter()
    _, _, done = descend(start, s, rep.ead, cfg)
    seconds = time.perf_counter() - t0
    return {
        "dataset": dataset,
        "preset": preset,
        "n": n,
        "mean_atoms": sum(len(t.numbers) for t in targets) / n,
        "crystal_steps_per_s": int(done.sum()) / seconds,
        "ms_per_crystal_step": 1e3 * seconds / int(done.sum()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["perov_5", "carbon_24", "mp_20"])
    p.add_argument("--presets", nargs="+", default=["small", "paper"])
    p.add_argument("--n", type=int, default=8, help="crystals per batch (first N test rows)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--dtype", default="float32")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    print("| dataset | preset | crystals | mean atoms | crystal-steps/s | ms per crystal-step |")
    print("|---|---|---|---|---|---|")
    for ds in args.datasets:
        for preset in args.presets:
            r = step_cost(ds, preset, args.n, args.steps, args.dtype)
            print(
                f"| {ds} | {preset} | {r['n']} | {r['mean_atoms']:.1f} | "
                f"{r['crystal_steps_per_s']:.0f} | {r['ms_per_crystal_step']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
