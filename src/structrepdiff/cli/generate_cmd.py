"""`structrepdiff generate`: sample vectors from a model and reconstruct them into crystals."""

from __future__ import annotations

import argparse
from pathlib import Path

from structrepdiff.cli import codes
from structrepdiff.cli.reconstruct_cmd import add_reconstruct_options, reconstruct_overrides
from structrepdiff.cli.relax_cmd import add_relax_options, relax_config
from structrepdiff.cli.sample_cmd import add_sampling_options
from structrepdiff.data.run_folder import SAMPLES
from structrepdiff.pipeline.generate import GenerateConfig
from structrepdiff.pipeline.sample import SampleConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample, decode and reconstruct new crystals",
        description="Sample --num vectors from a model (once; reused on a rerun), decode each "
        "and reconstruct the decodable ones. Writes CIFs, summary.csv (status and reason per "
        "sample) and generated.extxyz to --out; rerunning resumes.",
    )
    p.add_argument("--model", required=True, type=Path,
                   help="checkpoint.pt from `train`, or a bundled model's name: perov_5, "
                   "carbon_24, mp_20")  # fmt: skip
    p.add_argument("--num", required=True, type=int, help="how many samples")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_sampling_options(p, "--sample-steps")
    p.add_argument("--sample-batch-size", type=int, default=SampleConfig.batch_size,
                   help="vectors per sampling batch")  # fmt: skip
    add_reconstruct_options(p)
    p.add_argument(
        "--relax",
        action="store_true",
        help="then relax the crystals with a universal potential into --out/relaxed",
    )
    add_relax_options(p)
    p.add_argument("--relax-workers", type=int, default=GenerateConfig.relax_workers,
                   help="relaxation processes (default: one per core, no more than "
                        "batches)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from structrepdiff.pipeline.generate import generate

    seed = SampleConfig.seed if args.seed is None else args.seed
    smp = SampleConfig(model=args.model, out=args.out / SAMPLES, num=args.num,
                       sampler=args.sampler, steps=args.sample_steps, seed=seed,
                       batch_size=args.sample_batch_size, device=args.device,
                       formulas=tuple(args.formula),
                       composition_from=args.composition_from,
                       guidance=args.guidance, space_group=args.space_group)  # fmt: skip
    _say_starts(args, smp)
    overrides = reconstruct_overrides(args)
    overrides.pop("seed", None)  # one --seed seeds both stages (SampleConfig.seed)
    cfg = GenerateConfig(out=args.out, sample=smp, templates=args.templates,
                         overrides=overrides, data_dir=args.data_dir,
                         batch_size=args.batch_size,
                         relax=relax_config(args) if args.relax else None,
                         relax_workers=args.relax_workers, force=args.force,
                         progress=not args.no_progress)  # fmt: skip
    from structrepdiff.cluster import open_client

    with open_client(args.scheduler) as client:
        summary, frames = generate(cfg, client)
    print(
        f"generated {args.num} samples -> {args.out} ({frames} crystals in generated.extxyz; "
        f"{summary.done_before} already done before this run)"
    )
    for status, n in sorted(summary.counts.items()):
        print(f"  {status:14s} {n}")
    if args.relax:
        print(f"relaxed crystals -> {args.out / 'relaxed'}/summary.csv")
    return codes.OK if frames else codes.NOTHING


def _say_starts(args: argparse.Namespace, smp) -> None:
    """Check the model once (a group it cannot use is one line before anything is written)
    and say on stderr which starts reconstruction will take (`reconstruct.starts`)."""
    import sys

    from structrepdiff.pipeline.checkpoint import LoadedModel, training_source
    from structrepdiff.pipeline.sample import uses_groups
    from structrepdiff.reconstruct.starts import resolve_starts

    loaded = LoadedModel.load(smp.model, smp.device)
    src = training_source(loaded.ckpt)
    path, used = resolve_starts(args.templates, src.get("dataset"), src.get("split"),
                                uses_groups(loaded, smp.space_group), loaded.ckpt.get("templates"),
                                args.data_dir)  # fmt: skip
    print(f"templates: {used}" + (f" ({path})" if path else ""), file=sys.stderr)
