"""`structrepdiff reconstruct`: R vectors (.npz) -> crystals (CIF) by gradient descent."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from structrepdiff.cli import codes

if TYPE_CHECKING:
    from structrepdiff.reconstruct.config import ReconstructConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="turn representation vectors back into crystals",
        description="Decode each vector of a feature file (element counts, lattice, EAD "
        "target) and recover atomic positions by Adam inside basin hopping. Writes one CIF per "
        "crystal and summary.csv to --out, row by row; rerunning resumes.",
    )
    p.add_argument("--representations", required=True, type=Path, help=".npz from featurize")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--limit", type=int, help="only the first N vectors")
    add_reconstruct_options(p)
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def add_reconstruct_options(p: argparse.ArgumentParser) -> None:
    """Reconstruction options shared by `reconstruct` and `generate` (see `reconstruct_config`)."""
    p.add_argument("--trials", type=int, default=6, help="random starts per crystal")
    p.add_argument("--hops", type=int, default=7, help="basin-hopping hops per trial")
    p.add_argument("--steps", type=int, default=300, help="Adam steps per hop")
    p.add_argument(
        "--threshold",
        type=float,
        default=1e-3,
        help="relative L1 loss below which a crystal counts as converged",
    )
    p.add_argument(
        "--lr",
        type=float,
        nargs=2,
        default=(0.1, 0.005),
        metavar=("START", "END"),
        help="Adam step size in Å, decayed within each hop",
    )
    p.add_argument(
        "--templates",
        type=Path,
        help="template .npz from `structrepdiff templates`: trials start from known crystals "
        "with the same species-count pattern (best first), the rest at random",
    )
    p.add_argument("--hop-size", type=float, default=1.0, help="basin hop size in Å")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="crystals optimised together")


def reconstruct_config(args: argparse.Namespace) -> ReconstructConfig:
    """The ReconstructConfig named by the options of `add_reconstruct_options`."""
    from structrepdiff.reconstruct.config import ReconstructConfig

    if args.batch_size < 1:
        raise ValueError("--batch-size must be positive")
    return ReconstructConfig(
        trials=args.trials,
        hops=args.hops,
        steps=args.steps,
        threshold=args.threshold,
        lr_start=args.lr[0],
        lr_end=args.lr[1],
        hop_size=args.hop_size,
        dtype=args.dtype,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be positive")
    config = reconstruct_config(args)
    job = ReconstructJob(
        args.representations,
        args.out,
        config,
        args.limit,
        args.batch_size,
        args.force,
        not args.no_progress,
        args.templates,
    )
    s = run_reconstruction(job)
    total = sum(s.counts.values())
    print(
        f"reconstructed {total} vectors in {s.seconds:.1f} s -> {s.out}/summary.csv "
        f"({s.done_before} already done before this run)"
    )
    for status, n in sorted(s.counts.items()):
        print(f"  {status:14s} {n}")
    produced = sum(n for st, n in s.counts.items() if st in ("converged", "not_converged"))
    return codes.OK if produced or s.done_before else codes.NOTHING
