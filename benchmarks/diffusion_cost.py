"""Training-step and sampling cost of the denoisers, measured in one run (issue #4).

For a vector length D (e.g. 697 for MP-20 with the paper preset, 577 with the small one):
seconds per Adam step at batch 64 for each denoiser (same process, alternating, best of
``--repeats``), their ratio, and seconds per 1,000 sampled vectors for ancestral DDPM (T steps)
and DDIM (``--ddim-steps``), extrapolated from one timed batch.

    python benchmarks/diffusion_cost.py --dim 577 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from structrepdiff.diffusion.ddpm import GaussianDiffusion
from structrepdiff.diffusion.denoisers import DenoiserConfig, build_denoiser

DENOISERS = {
    "mlp": DenoiserConfig(kind="mlp", dim=1),
    "unet1d (paper size)": DenoiserConfig(kind="unet1d", dim=1, channels=64, mults=(1, 2, 4, 8)),
}


def step_seconds(net, diff: GaussianDiffusion, dim: int, batch: int, repeats: int) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.randn(batch, dim)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss = diff.loss(net, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    return best


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
    for name, cfg in DENOISERS.items():
        net = build_denoiser(DenoiserConfig.from_dict({**cfg.to_dict(), "dim": args.dim}))
        fwd = forward_seconds(net.eval(), args.dim, args.sample_batch, args.repeats)
        per_1000 = 1000 / args.sample_batch * fwd
        result[name] = {
            "params": sum(q.numel() for q in net.parameters()),
            "train_step_s": step_seconds(net.train(), diff, args.dim, args.batch, args.repeats),
            "ddpm_s_per_1000": per_1000 * args.T, "ddim_s_per_1000": per_1000 * args.ddim_steps,
        }  # fmt: skip
        print(name, json.dumps(result[name]), flush=True)
    names = list(DENOISERS)
    result["train_step_ratio_unet_over_mlp"] = (result[names[1]]["train_step_s"]
                                                / result[names[0]]["train_step_s"])  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1))
    print("ratio", result["train_step_ratio_unet_over_mlp"])


if __name__ == "__main__":
    main()
