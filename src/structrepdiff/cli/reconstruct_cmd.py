"""`structrepdiff reconstruct`: R vectors (.npz) -> crystals (CIF) by gradient descent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from structrepdiff.cli import codes
from structrepdiff.reconstruct.config import (
    JOB_BATCH_SIZE,
    JOB_DEVICE,
    TEMPLATE_BUDGET,
    ReconstructConfig,
    SymmetricConfig,
)
from structrepdiff.reconstruct.starts import TEMPLATES_DEFAULT


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
    p.add_argument("--device", default=JOB_DEVICE,
                   help="torch device of the descent (cpu, cuda, cuda:1); with a GPU use a "
                   "large --batch-size, e.g. 1024")  # fmt: skip
    add_reconstruct_options(p)
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def add_reconstruct_options(p: argparse.ArgumentParser) -> None:
    """Reconstruction options shared by `reconstruct` and `generate`. None of them has a
    default of its own: an option not given keeps the budget that follows the starts
    (`reconstruct.starts.budget`: `TEMPLATE_BUDGET` with templates, `ReconstructConfig()`
    from random positions, `SymmetricConfig()` inside space groups)."""
    D, T, S = ReconstructConfig(), TEMPLATE_BUDGET, SymmetricConfig()

    def add(flag: str, kind, text: str, default_text, **kw) -> None:
        p.add_argument(flag, type=kind, help=f"{text} (default: {default_text})", **kw)

    add("--trials", int, "starts per crystal", f"{T.trials} with templates, {D.trials} from "
        f"random positions, {S.trials} inside a space group")  # fmt: skip
    add("--hops", int, "basin-hopping hops per start", f"{T.hops} with templates, {D.hops} "
        f"from random positions, {S.hops} inside a space group")  # fmt: skip
    add("--steps", int, "Adam steps per hop", D.steps)
    add("--threshold", float, "relative L1 loss below which a crystal counts as converged",
        D.threshold)  # fmt: skip
    add("--lr", float, "Adam step size in Å, decayed within each hop",
        f"{D.lr_start} {D.lr_end}", nargs=2, metavar=("START", "END"))  # fmt: skip
    p.add_argument(
        "--templates",
        default=TEMPLATES_DEFAULT,
        help="starting crystals: 'auto' (the training split's crystals bundled with the "
        "model, else the data directory's, built once and cached; random starts where neither "
        "exists), 'data' (the data directory's only), 'none' (random starts), or a template "
        "file (.npz from `structrepdiff templates`)",
    )
    add("--hop-size", float, "basin hop size in Å", D.hop_size)
    add("--patience", int, "stop a hop whose best loss (above --plateau-floor) fell by less "
        "than --plateau-tol in this many steps; 0 runs every step", D.patience)  # fmt: skip
    add("--plateau-tol", float, "relative improvement that counts as progress", D.plateau_tol)
    add("--plateau-floor", float, "a crystal with a loss at or below this is never stopped "
        "early", D.plateau_floor)  # fmt: skip
    add("--dtype", str, "precision of the descent", D.dtype, choices=["float32", "float64"])
    add("--seed", int, "seed of the starts and hops", D.seed)
    p.add_argument("--batch-size", type=int, default=JOB_BATCH_SIZE,
                   help="crystals optimised together")  # fmt: skip
    p.add_argument("--data-dir", help="data folder for --templates auto / data")
    p.add_argument("--scheduler",
                   help="spread the batches over Dask workers: local:N (N local processes) or "
                   "a scheduler address; the same crystals as a serial run")  # fmt: skip


_OVERRIDES = ("trials", "hops", "steps", "threshold", "hop_size", "patience", "plateau_tol",
              "plateau_floor", "dtype", "seed")  # fmt: skip


def reconstruct_overrides(args: argparse.Namespace) -> dict:
    """The reconstruction settings given on the command line (field: value), to replace the
    budget's (`reconstruct.starts.budget`)."""
    if args.batch_size < 1:
        raise ValueError("--batch-size must be positive")
    out = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    if args.lr is not None:
        out["lr_start"], out["lr_end"] = args.lr
    return out


def run(args: argparse.Namespace) -> int:
    from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction
    from structrepdiff.reconstruct.starts import starts_for

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be positive")
    templates, config, used = starts_for(args.representations, args.templates,
                                         reconstruct_overrides(args), args.data_dir)  # fmt: skip
    print(f"templates: {used}" + (f" ({templates})" if templates else ""), file=sys.stderr)
    job = ReconstructJob(
        args.representations,
        args.out,
        config,
        args.limit,
        args.batch_size,
        args.force,
        not args.no_progress,
        templates,
        args.device,
    )
    from structrepdiff.cluster import open_client

    with open_client(args.scheduler) as client:
        s = run_reconstruction(job, client)
    total = sum(s.counts.values())
    print(
        f"reconstructed {total} vectors in {s.seconds:.1f} s -> {s.out}/summary.csv "
        f"({s.done_before} already done before this run)"
    )
    for status, n in sorted(s.counts.items()):
        print(f"  {status:14s} {n}")
    produced = sum(n for st, n in s.counts.items() if st in ("converged", "not_converged"))
    return codes.OK if produced or s.done_before else codes.NOTHING
