"""ATen operator calls per part of one reconstruction step (issue #16, deliverable 1): the
neighbour-list rebuild, the EAD forward, the loss forward + backward and one whole Adam step,
for the first ``--n`` test crystals of a dataset as one batch (float32, one thread).

    python benchmarks/reconstruction_op_count.py --dataset mp_20 --preset small
"""

from __future__ import annotations

import argparse
import json
import warnings

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
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
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
    out = {"dataset": a.dataset, "preset": a.preset, "crystals": a.n,
           "neighbour_list_rebuild": aten_calls(lambda: neighbor_list(crystals(), cutoff)),
           "ead_forward": aten_calls(lambda: compute_ead(crystals(), rep.ead, nl)),
           "loss_forward_backward": aten_calls(loss_and_grad),
           "adam_step_without_rebuild": aten_calls(lambda: descent.step(0, 0.01))}  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
