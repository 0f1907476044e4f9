"""`structrepdiff sample`: draw representation vectors from a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from structrepdiff.pipeline.sample import SAMPLERS, SampleConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="sample R vectors from a model checkpoint",
        description="Sample vectors with the model's EMA weights and write them as a feature "
        "file (.npz, ids sample_000000, ...) that `reconstruct` reads.",
    )
    p.add_argument("--model", required=True, type=Path,
                   help="checkpoint.pt from `train`, or a bundled model's name: perov_5, "
                   "carbon_24, mp_20")  # fmt: skip
    p.add_argument("--num", required=True, type=int, help="how many vectors")
    p.add_argument("--out", required=True, type=Path, help="output .npz")
    add_sampling_options(p, "--sample-steps")
    p.add_argument("--steps", dest="sample_steps", type=int, help=argparse.SUPPRESS)  # old name
    p.add_argument("--seed", type=int, default=SampleConfig.seed)
    p.add_argument("--batch-size", type=int, default=SampleConfig.batch_size,
                   help="vectors per batch")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def add_sampling_options(p: argparse.ArgumentParser, steps_flag: str) -> None:
    """Sampler options shared by `sample` and `generate` (which names its steps flag
    --sample-steps, its --steps being the reconstruction's); the value lands in
    ``args.sample_steps``."""
    p.add_argument("--sampler", choices=SAMPLERS, default=SampleConfig.sampler)
    p.add_argument(steps_flag, dest="sample_steps", type=int, default=SampleConfig.steps,
                   help="DDIM steps (ddpm uses all T)")  # fmt: skip
    p.add_argument("--device", default=SampleConfig.device,
                   help="torch device (cpu, cuda, cuda:1): sampling, and in `generate` also "
                   "the reconstruction and, unless --relax-device, the relaxation")  # fmt: skip
    p.add_argument("--guidance", type=float, default=SampleConfig.guidance,
                   help="classifier-free guidance scale of a conditional model (1: plain "
                   "conditional, 0: unconditional)")  # fmt: skip
    p.add_argument("--space-group", default=SampleConfig.space_group,
                   help="auto: give each sample a space group and Wyckoff pattern from the "
                   "model's prior (when it carries one) and reconstruct inside it; off: no "
                   "groups; 1-230: this group for every sample (1 = P1)")  # fmt: skip
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--formula", action="append", default=[],
                      help="fix composition and atom count (e.g. SrTiO3 = 5 atoms); "
                      "repeatable, cycled over the samples")  # fmt: skip
    cond.add_argument("--composition-from", type=Path,
                      help="feature .npz (same representation) to draw compositions and "
                      "atom counts from, seeded; e.g. the training features")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from structrepdiff.pipeline.sample import sample

    cfg = SampleConfig(
        model=args.model,
        out=args.out,
        num=args.num,
        sampler=args.sampler,
        steps=args.sample_steps,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        formulas=tuple(args.formula),
        composition_from=args.composition_from,
        guidance=args.guidance,
        space_group=args.space_group,
        force=args.force,
        progress=not args.no_progress,
    )
    path = sample(cfg)
    print(f"sampled {args.num} vectors ({args.sampler}) -> {path}")
    return 0
