"""Training-step and sampling cost of the denoisers, measured in one run (issue #4).

For a vector length D (e.g. 697 for MP-20 with the paper preset, 577 with the small one):
seconds per Adam step at batch 64 for each denoiser (same process; the repeats of all
denoisers are interleaved, so a noisy spell hits them alike; median of ``--repeats``), the
ratio of each to the U-Net, and seconds per 1,000 sampled vectors for ancestral DDPM (T steps)
and DDIM (``--ddim-steps``), extrapolated from one timed batch.

    python benchmarks/diffusion_cost.py --dim 577 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from structrepdiff.diffusion.ddpm import GaussianDiffusion
from structrepdiff.diffusion.denoisers import DenoiserConfig, build_denoiser

DENOISERS = {
    "mlp (hidden 512)": DenoiserConfig(kind="mlp", dim=1, hidden=512),
    "mlp (hidden 512, gaussian skip: recipe)": DenoiserConfig(
        kind="mlp", dim=1, hidden=512, gaussian_skip=True
    ),
    "mlp (hidden 1024)": DenoiserConfig(kind="mlp", dim=1, hidden=1024),
    "unet1d (paper size)": DenoiserConfig(kind="unet1d", dim=1, channels=64, mults=(1, 2, 4, 8)),
}
UNET = "unet1d (paper size)"


def step_once(net, opt, diff: GaussianDiffusion, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    loss = diff.loss(net, x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def interleaved_step_seconds(nets: dict, diff: GaussianDiffusion, dim: int, batch: int,
                             repeats: int) -> dict[str, float]:  # fmt: skip
    """Median seconds per Adam step per net; round r times every net once before round r+1."""
    opts = {k: torch.optim.Adam(n.parameters(), lr=1e-4) for k, n in nets.items()}
    x = torch.randn(batch, dim)
    times: dict[str, list[float]] = {k: [] for k in nets}
    for r in range(repeats + 1):
        for k, net in nets.items():
            dt = step_once(net.train(), opts[k], diff, x)
            if r > 0:  # round 0 warms up allocators and caches
                times[k].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}


@torch.no_grad()
def forward_seconds(net, dim: int, batch: int, repeats: int) -> float:
    x, t = torch.randn(batch, dim), torch.zeros(batch, dtype=torch.long)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        net(x, t)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=577)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sample-batch", type=int, default=250)
    p.add_argument("--ddim-steps", type=int, default=100)
    p.add_argument("--T", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/diffusion_cost.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    diff = GaussianDiffusion(args.T)
    result = {
        "dim": args.dim,
        "batch": args.batch,
        "threads": args.threads,
        "T": args.T,
        "ddim_steps": args.ddim_steps,
        "machine": f"{os.cpu_count()} CPU, torch {torch.__version__}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    nets = {name: build_denoiser(DenoiserConfig.from_dict({**cfg.to_dict(), "dim": args.dim}))
            for name, cfg in DENOISERS.items()}  # fmt: skip
    steps = interleaved_step_seconds(nets, diff, args.dim, args.batch, args.repeats)
    unet = steps[UNET]
    for name, net in nets.items():
        fwd = forward_seconds(net.eval(), args.dim, args.sample_batch, args.repeats)
        per_1000 = 1000 / args.sample_batch * fwd
        result[name] = {
            "params": sum(q.numel() for q in net.parameters()), "train_step_s": steps[name],
            "unet_over_this": unet / steps[name],
            "ddpm_s_per_1000": per_1000 * args.T, "ddim_s_per_1000": per_1000 * args.ddim_steps,
        }  # fmt: skip
        print(name, json.dumps(result[name]), flush=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
