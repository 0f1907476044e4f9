"""`structrepdiff generate`: sample vectors from a model and reconstruct them into crystals."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample, decode and reconstruct new crystals",
        description="Sample --num vectors from a model (once; reused on a rerun), decode each "
        "and reconstruct the decodable ones. Writes CIFs, summary.csv (status and reason per "
        "sample) and generated.extxyz to --out; rerunning resumes.",
    )
    p.add_argument("--model", required=True, type=Path, help="checkpoint.pt from `train`")
    p.add_argument("--num", required=True, type=int, help="how many samples")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--sample-steps", type=int, default=100, help="DDIM steps")
    p.add_argument("--templates", type=Path, help="template .npz (see `templates`)")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--hops", type=int, default=7)
    p.add_argument("--steps", type=int, default=300, help="Adam steps per hop")
    p.add_argument("--threshold", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="crystals reconstructed together")
    p.add_argument("--device", default="cpu", help="device for sampling")
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from structrepdiff.generate import GenerateConfig, generate
    from structrepdiff.reconstruct.config import ReconstructConfig

    rec = ReconstructConfig(trials=args.trials, hops=args.hops, steps=args.steps,
                            threshold=args.threshold, seed=args.seed)  # fmt: skip
    cfg = GenerateConfig(model=args.model, out=args.out, num=args.num, sampler=args.sampler,
                         steps=args.sample_steps, seed=args.seed, reconstruct=rec,
                         templates=args.templates, batch_size=args.batch_size,
                         device=args.device, force=args.force,
                         progress=not args.no_progress)  # fmt: skip
    summary, frames = generate(cfg)
    print(
        f"generated {args.num} samples -> {args.out} ({frames} crystals in generated.extxyz; "
        f"{summary.done_before} already done before this run)"
    )
    for status, n in sorted(summary.counts.items()):
        print(f"  {status:14s} {n}")
    return 0
