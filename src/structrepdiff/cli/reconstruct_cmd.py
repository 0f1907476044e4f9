"""`structrepdiff reconstruct`: R vectors (.npz) -> crystals (CIF) by gradient descent."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from structrepdiff.cli import codes
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET, ReconstructConfig


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
    p.add_argument("--device", default="cpu",
                   help="torch device of the descent (cpu, cuda, cuda:1); with a GPU use a "
                   "large --batch-size, e.g. 1024")  # fmt: skip
    add_reconstruct_options(p)
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def add_reconstruct_options(p: argparse.ArgumentParser) -> None:
    """Reconstruction options shared by `reconstruct` and `generate` (see `reconstruct_config`);
    every default is the dataclass's: `TEMPLATE_BUDGET` with templates, `ReconstructConfig()`
    with random starts."""
    D, T = ReconstructConfig(), TEMPLATE_BUDGET
    p.add_argument(
        "--trials",
        type=int,
        help=f"starts per crystal (default: {T.trials} with templates, "
        f"{D.trials} from random positions)",
    )
    p.add_argument(
        "--hops",
        type=int,
        help=f"basin-hopping hops per start (default: {T.hops} with templates, "
        f"{D.hops} from random positions)",
    )
    p.add_argument("--steps", type=int, default=D.steps, help="Adam steps per hop")
    p.add_argument(
        "--threshold",
        type=float,
        default=D.threshold,
        help="relative L1 loss below which a crystal counts as converged",
    )
    p.add_argument(
        "--lr",
        type=float,
        nargs=2,
        default=(D.lr_start, D.lr_end),
        metavar=("START", "END"),
        help="Adam step size in Å, decayed within each hop",
    )
    p.add_argument(
        "--templates",
        default="auto",
        help="starting crystals: a .npz from `structrepdiff templates`, 'auto' (the "
        "training split's crystals bundled with the model, else the data directory's, built "
        "once and cached; random starts where neither exists), 'data' (the data directory's "
        "only) or 'none' (random starts)",
    )
    p.add_argument("--hop-size", type=float, default=D.hop_size, help="basin hop size in Å")
    p.add_argument("--patience", type=int, default=D.patience,
                   help="stop a hop whose best loss (above --plateau-floor) fell by less than "
                   "--plateau-tol in this many steps; 0 runs every step")  # fmt: skip
    p.add_argument("--plateau-tol", type=float, default=D.plateau_tol,
                   help="relative improvement that counts as progress")  # fmt: skip
    p.add_argument(
        "--plateau-floor",
        type=float,
        default=D.plateau_floor,
        help="a crystal with a loss at or below this is never stopped early",
    )
    p.add_argument("--dtype", choices=["float32", "float64"], default=D.dtype)
    p.add_argument("--seed", type=int, default=D.seed)
    p.add_argument("--batch-size", type=int, default=8, help="crystals optimised together")
    p.add_argument("--data-dir", help="data folder for --templates auto")
    p.add_argument("--scheduler",
                   help="spread the batches over Dask workers: local:N (N local processes) or "
                   "a scheduler address; the same crystals as a serial run")  # fmt: skip


def resolve_templates(args: argparse.Namespace, dataset: str | None,
                      split: str | None = None, symmetric: bool = False,
                      pack: dict | None = None) -> Path | None:  # fmt: skip
    """The template file ``--templates`` names: a path, none, auto or data (``dataset``'s
    training split — ``split`` when the model records which — from the model's template
    ``pack`` or the bundled model's, else or with data from the data directory; on Wyckoff
    parameters for reconstruction inside groups when ``symmetric``), saying which on stderr."""
    import sys

    from structrepdiff.reconstruct.templates import auto_templates

    choice = str(args.templates)
    if choice.lower() == "none":
        return None
    if choice not in ("auto", "data"):
        if symmetric and not choice.endswith(".json"):
            raise ValueError(f"--templates {choice}: reconstruction inside space groups starts "
                             "from a split described on Wyckoff parameters (.json), 'auto' or "
                             "'none'; use --space-group off for .npz templates")  # fmt: skip
        return Path(choice)
    path, used = auto_templates(dataset, split, args.data_dir, symmetric=symmetric,
                                pack=pack, use_data=choice == "data")  # fmt: skip
    print(f"templates: {used}" + (f" ({path})" if path else ""), file=sys.stderr)
    return path


def reconstruct_config(args: argparse.Namespace, templates: bool,
                       symmetric: bool = False) -> ReconstructConfig:  # fmt: skip
    """The ReconstructConfig named by the options of `add_reconstruct_options`: trials and
    hops not given come from `TEMPLATE_BUDGET` with ``templates``, else `ReconstructConfig`;
    from `SymmetricConfig` for reconstruction inside groups (``symmetric``)."""
    from structrepdiff.reconstruct.symmetric import SymmetricConfig

    if args.batch_size < 1:
        raise ValueError("--batch-size must be positive")
    base = SymmetricConfig() if symmetric else TEMPLATE_BUDGET if templates else ReconstructConfig()
    return replace(
        base,
        trials=args.trials if args.trials is not None else base.trials,
        hops=args.hops if args.hops is not None else base.hops,
        steps=args.steps,
        threshold=args.threshold,
        lr_start=args.lr[0],
        lr_end=args.lr[1],
        hop_size=args.hop_size,
        patience=args.patience,
        plateau_tol=args.plateau_tol,
        plateau_floor=args.plateau_floor,
        dtype=args.dtype,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be positive")
    from structrepdiff.features import load_features

    src = load_features(args.representations).source
    # a `sample` file names the model's training split; a featurized split is never used
    symmetric = src.get("symmetry") is not None  # samples that carry a group each
    from structrepdiff.reconstruct.template_pack import checkpoint_pack

    templates = resolve_templates(args, src.get("dataset") or src.get("elements_from"),
                                  src.get("training_split"), symmetric,
                                  checkpoint_pack(src.get("model")))  # fmt: skip
    config = reconstruct_config(args, templates is not None, symmetric)
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
