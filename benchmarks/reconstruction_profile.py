"""Cost model of one reconstruction step (issue #16, deliverable 1): the work counted (pairs
within R_c + skin, Gaussian evaluations, multiply-adds of the EAD forward and backward) against
the time measured, and where the time goes (torch profiler, self CPU time by operator group;
what the operators do not account for is Python and autograd overhead).

For each dataset and preset: the first ``--n`` test crystals as one batch, random starts,
``--steps`` Adam steps with threshold 0 (no crystal stops), float32, one thread.

    python benchmarks/reconstruction_profile.py --n 8 --steps 30
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from structrepdiff.data.io import load_split
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.descriptor.ead import orbitals
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.geometry.neighbors import neighbor_list
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import descend, true_targets
from structrepdiff.representation.encode import Representation

GROUPS = {  # operator name fragments -> group, first match wins
    "gaussiansbackward": "EAD Gaussians (fused op, own time)",
    "gaussians": "EAD Gaussians (fused op, own time)",
    "exp": "exp", "bmm": "orbital products (bmm)", "sub": "differences (sub)",
    "masked_fill": "window masks (ge, masked_fill)", "aten::ge": "window masks (ge, masked_fill)",
    "aten::lt": "window masks (ge, masked_fill)", "aten::le": "window masks (ge, masked_fill)",
    "index_add": "scatter / index / gather", "scatter": "scatter / index / gather",
    "index": "scatter / index / gather", "gather": "scatter / index / gather",
    "sort": "sorts (neighbour windows)", "linalg": "cell algebra (solve, einsum)",
    "einsum": "cell algebra (solve, einsum)", "aten::mul": "elementwise (mul, add, div, pow)",
    "aten::add": "elementwise (mul, add, div, pow)",
    "aten::div": "elementwise (mul, add, div, pow)",
    "aten::pow": "elementwise (mul, add, div, pow)", "sum": "reductions", "max": "reductions",
    "min": "reductions", "copy": "copies and concatenation", "cat": "copies and concatenation",
}  # fmt: skip


def group_of(name: str) -> str:
    low = name.lower()
    return next((g for k, g in GROUPS.items() if k in low), "other operators")


def work_counts(pos, s, ead, skin: float) -> dict:
    """Pairs in the list (R_c + skin) and within R_c, and the EAD's arithmetic per step."""
    crystals = Crystals(pos, s.numbers, s.cell, s.batch)
    nl = neighbor_list(crystals, ead.cutoff + skin)
    cell = s.cell[s.batch[nl.i]]
    d = pos[nl.j] - pos[nl.i] + torch.einsum("pk,pkl->pl", nl.shifts.to(pos.dtype), cell)
    inside = int((d.norm(dim=1) <= ead.cutoff).sum())
    gauss, n_orb = len(ead.etas) * len(ead.rs), len(orbitals(ead.L))
    # per listed pair and Gaussian: one exp and about 2 flops per orbital product-sum in the
    # forward; the backward costs about twice the forward
    flops = len(nl) * gauss * (1 + 2 * n_orb) * 3
    return {"pairs_listed": len(nl), "pairs_within_cutoff": inside, "gaussians": gauss,
            "orbitals": n_orb, "flops_per_step_estimate": flops}  # fmt: skip


def measure(dataset: str, preset: str, n: int, steps: int) -> dict:
    info = get_dataset(dataset)
    structures = load_split(dataset, "test", limit=n).structures
    rep = Representation(get_preset(preset), info.atomic_numbers, info.n_max)
    cfg = ReconstructConfig(steps=steps, threshold=0.0)
    _, s, true = true_targets([str(k) for k in range(n)], structures, rep, torch.float32)
    g = torch.Generator().manual_seed(0)
    start = true + 0.3 * torch.randn(true.shape, generator=g, dtype=true.dtype)
    descend(start, s, rep.ead, ReconstructConfig(steps=2, threshold=0.0))  # warm up
    t0 = time.perf_counter()
    descend(start, s, rep.ead, cfg)
    wall = time.perf_counter() - t0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        descend(start, s, rep.ead, cfg)
    groups: dict[str, float] = defaultdict(float)
    calls = 0
    for ev in prof.key_averages():
        groups[group_of(ev.key)] += ev.self_cpu_time_total / 1e6
        calls += ev.count if ev.key.startswith("aten::") else 0
    work = work_counts(start, s, rep.ead, cfg.skin)
    return {"dataset": dataset, "preset": preset, "crystals": n, "steps": steps,
            "atoms": int(s.numbers.shape[0]), "wall_s": round(wall, 3),
            "ms_per_crystal_step": round(1e3 * wall / (n * steps), 3),
            "gflops_per_s_estimate": round(work["flops_per_step_estimate"] * steps / wall / 1e9,
                                           3),
            **work,
            "profile_s": {k: round(v, 3) for k, v in sorted(groups.items(),
                                                            key=lambda kv: -kv[1])},
            "operators_s": round(sum(groups.values()), 3),
            "aten_calls_per_step": round(calls / steps),
            "us_per_aten_call": round(1e6 * wall / calls, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["perov_5", "carbon_24", "mp_20"])
    ap.add_argument("--presets", nargs="+", default=["small", "paper"])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/reconstruction_profile.json")
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    rows = []
    for ds in a.datasets:
        for preset in a.presets:
            r = measure(ds, preset, a.n, a.steps)
            rows.append(r)
            print(json.dumps(r), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"rows": rows, "date": datetime.now(UTC).isoformat(
        timespec="seconds"), "machine": "2 vCPU, 1 torch thread", "torch": torch.__version__},
        indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
