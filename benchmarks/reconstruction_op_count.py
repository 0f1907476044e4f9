"""ATen operator calls per part of one reconstruction step (issue #16, deliverable 1): the
neighbour-list rebuild, the EAD forward, the loss forward + backward and one whole Adam step,
for the first ``--n`` test crystals of a dataset as one batch (float32, one thread).
``--gpu-like`` runs the step the way it runs on a GPU (the batched neighbour list and the GPU
EAD chunk budget), still on this CPU: the operator count is then the number of kernel
launches a GPU step would need, and the CPU seconds bound its arithmetic (the cost model of
the GPU path, issue #16 deliverable 3). Appends one JSON line to ``--out``.

    python benchmarks/reconstruction_op_count.py --dataset mp_20 --preset small
    python benchmarks/reconstruction_op_count.py --dataset mp_20 --n 512 --gpu-like
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from structrepdiff.data.io import load_split
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.descriptor.ead import compute_ead
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.geometry.neighbors import neighbor_list
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import _Descent, descriptor_loss, true_targets
from structrepdiff.representation.encode import Representation


def aten_calls(fn) -> int:
    """ATen operator calls of one call of ``fn`` (after one warm-up call)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--gpu-like", action="store_true")
    ap.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/reconstruction_op_count.jsonl")
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    if a.gpu_like:
        import structrepdiff.descriptor.ead as ead
        import structrepdiff.geometry.neighbors as nb

        ead.DEFAULT_CHUNK_ELEMENTS = ead.GPU_CHUNK_ELEMENTS
        nb._alike = lambda counts, reach: True  # "auto" picks the batched pass, as on a GPU
    info = get_dataset(a.dataset)
    structures = load_split(a.dataset, "test", limit=a.n).structures
    rep = Representation(get_preset(a.preset), info.atomic_numbers, info.n_max)
    _, s, true = true_targets([str(k) for k in range(a.n)], structures, rep, torch.float32)
    pos = true + 0.3 * torch.randn(true.shape, generator=torch.Generator().manual_seed(0))
    cfg = ReconstructConfig(threshold=0.0)
    cutoff = rep.ead.cutoff + cfg.skin

    def crystals() -> Crystals:
        return Crystals(pos, s.numbers, s.cell, s.batch)

    nl = neighbor_list(crystals(), cutoff)

    def loss_and_grad() -> None:
        p = pos.detach().requires_grad_(True)
        torch.autograd.grad(descriptor_loss(p, s, rep.ead, nl, cfg.d_min_weight).sum(), p)

    descent = _Descent(pos, s, rep.ead, cfg)
    seconds = []
    for _ in range(3):
        t0 = time.perf_counter()
        loss_and_grad()
        seconds.append(time.perf_counter() - t0)
    out = {"dataset": a.dataset, "preset": a.preset, "crystals": a.n, "gpu_like": a.gpu_like,
           "atoms": int(pos.shape[0]), "pairs_listed": len(nl),
           "cpu_seconds_loss_forward_backward": round(sorted(seconds)[1], 4),
           "neighbour_list_rebuild": aten_calls(lambda: neighbor_list(crystals(), cutoff)),
           "ead_forward": aten_calls(lambda: compute_ead(crystals(), rep.ead, nl)),
           "loss_forward_backward": aten_calls(loss_and_grad),
           "adam_step_without_rebuild": aten_calls(lambda: descent.step(0, 0.01))}  # fmt: skip
    print(json.dumps(out))
    with open(a.out, "a") as fh:
        fh.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
