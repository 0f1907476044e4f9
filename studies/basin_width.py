"""How far from the true crystal does one descent still converge — for R as it is, and for
richer pooled statistics of the same per-atom EAD (changes to R measured before making them).

MP-20 test crystals with N >= 7 (from the seeded, size-stratified subset of
benchmarks/reconstruction.py) start from the true positions plus Gaussian noise of sigma Å per
coordinate, or from uniform random positions, and take one 300-step Adam descent (the default
schedule) on the loss of a pooling variant:

- ``maxmin``: EAD_max and EAD_min over the crystal (R as it is);
- ``maxmin+mean``: plus the mean over atoms (every atom gets gradient);
- ``species``: max and min per species slot (species sorted by Z), so R carries species;
- ``species+mean``: plus the per-species mean;
- ``sorted``: every feature's sorted per-atom values (all per-atom information: an upper bound).

Reported: fraction whose R loss (max/min blocks + d_min, as in reconstruction) ends below 1e-3.

    python studies/basin_width.py --n 60
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

import structrepdiff.reconstruct.optimize as opt
from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.descriptor.ead import compute_ead
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import true_targets
from structrepdiff.representation.encode import Representation

MODES = ("maxmin", "maxmin+mean", "species", "species+mean", "sorted")


def species_slots(numbers: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(N,) index of each atom's species among its crystal's species (sorted by Z), and the
    number of slots."""
    slot = torch.zeros_like(numbers)
    for b in batch.unique().tolist():
        m = batch == b
        slot[m] = torch.searchsorted(torch.unique(numbers[m]), numbers[m])
    return slot, int(slot.max()) + 1


def pooled(ead: torch.Tensor, batch: torch.Tensor, slot: torch.Tensor, S: int, mode: str):
    """(B, D_mode) pooled statistics of per-atom features ead (N, F)."""
    B, F = int(batch.max()) + 1, ead.shape[1]

    def red(group: torch.Tensor, G: int, how: str) -> torch.Tensor:
        idx = group[:, None].expand(-1, F)
        out = ead.new_zeros(G, F).scatter_reduce(0, idx, ead, how, include_self=False)
        return out.reshape(B, -1)

    parts = []
    if mode.startswith("maxmin"):
        parts += [red(batch, B, "amax"), red(batch, B, "amin")]
        parts += [red(batch, B, "mean")] if mode.endswith("mean") else []
    elif mode.startswith("species"):
        g = batch * S + slot
        parts += [red(g, B * S, how) for how in ("amax", "amin")]
        parts += [red(g, B * S, "mean")] if mode.endswith("mean") else []
    else:
        rows = [ead[batch == b].sort(0).values.flatten() for b in range(B)]
        width = max(r.numel() for r in rows)
        parts.append(torch.stack([torch.nn.functional.pad(r, (0, width - r.numel()))
                                  for r in rows]))  # fmt: skip
    return torch.cat(parts, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60, help="size of the stratified subset")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.2, 0.4, 0.8])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/basin_width.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    info = get_dataset("mp_20")
    rep = Representation(get_preset("small"), info.atomic_numbers, info.n_max)
    ids, structs = seeded_subset(
        load_split("mp_20", "test", args.data_dir), args.n, 0, stratified=True
    )
    picked = [(i, st) for i, st in zip(ids, structs, strict=True) if len(st) >= 7]
    targets, s, true = true_targets(
        [i for i, _ in picked], [st for _, st in picked], rep, torch.float32
    )
    slot, S = species_slots(s.numbers, s.batch)
    with torch.no_grad():
        ead_true = compute_ead(Crystals(true, s.numbers, s.cell, s.batch), rep.ead).ead
    g = torch.Generator().manual_seed(0)
    starts = {str(sg): true + sg * torch.randn(true.shape, generator=g) for sg in args.sigmas}
    gens = [opt.crystal_generator(0, t.id) for t in targets]
    starts["random"] = opt._draw(s, gens, fractional=True)
    r_loss = opt.descriptor_loss
    result = {"n_crystals": len(targets), "threshold": 1e-3, "steps": 300}
    for mode in MODES:
        target = pooled(ead_true, s.batch, slot, S, mode)

        def loss(pos, s_, ead_cfg, nl, d_weight, overlap_weight=0.0, mode=mode, target=target):
            atoms = compute_ead(Crystals(pos, s_.numbers, s_.cell, s_.batch), ead_cfg, nl)
            v = pooled(atoms.ead, s_.batch, slot, S, mode)
            d = atoms.nearest.new_full((len(target),), torch.inf)
            d = d.scatter_reduce(0, s_.batch, atoms.nearest, "amin")
            rel = (v - target).abs().sum(1) / target.abs().sum(1)
            return rel + d_weight * (d - s_.t_d).abs() / s_.t_d

        opt.descriptor_loss = loss
        for name, p0 in starts.items():
            t0 = time.perf_counter()
            pos, _, _ = opt.descend(p0, s, rep.ead, ReconstructConfig(steps=300, threshold=0.0))
            with torch.no_grad():
                final = r_loss(pos, s, rep.ead, None, ReconstructConfig().d_min_weight)
            frac = float((final < 1e-3).float().mean())
            result.setdefault(mode, {})[name] = round(frac, 3)
            print(f"{mode:13s} start {name:6s} converged {frac:.2f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        opt.descriptor_loss = r_loss
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
