"""`structrepdiff hull build`: the reference hull of a dataset from a data directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from structrepdiff.relax.hull_build import HULL_SPLITS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hull",
        help="build the reference hull that `evaluate stability` scores against",
        description="`hull build`: single-point energies of every crystal of the dataset's "
        "splits with the universal potential (cached and resumable under --cache), the "
        "chemical potentials fitted to their DFT formation energies, and one virtual point "
        "per crystal from its DFT hull distance. Hours on a laptop for MP-20; the hull of "
        "MP-20's val + test ships with the package.",
    )
    modes = p.add_subparsers(dest="mode", required=True)
    b = modes.add_parser("build", help="build a hull JSON (.json.gz compresses)")
    b.add_argument("--dataset", required=True, help="a dataset whose CSVs carry formation "
                   "energies and hull distances (mp_20)")  # fmt: skip
    b.add_argument("--out", required=True, type=Path, help="hull file, .json or .json.gz")
    b.add_argument("--splits", nargs="+", default=list(HULL_SPLITS), help="splits in the hull")
    b.add_argument("--fit-splits", nargs="+", default=None,
                   help="splits the chemical potentials are fitted on (default: --splits)")
    b.add_argument("--potential", default=None,
                   help="universal potential (default: relax's, RelaxConfig.potential)")
    b.add_argument("--cache", type=Path,
                   help="folder of the cached single-point energies (default: the cache "
                   "folder's hull/)")  # fmt: skip
    b.add_argument("--data-dir", help="folder holding DATASET/SPLIT.csv[.gz]")
    b.add_argument("--force", action="store_true", help="overwrite --out")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    from structrepdiff.data.atomic import atomic_write
    from structrepdiff.relax.config import RelaxConfig
    from structrepdiff.relax.hull_build import build_reference_hull
    from structrepdiff.relax.potential import load_calculator

    if args.out.exists() and not args.force:
        raise FileExistsError(f"{args.out} exists; pass --force to overwrite")
    cfg = RelaxConfig() if args.potential is None else RelaxConfig(potential=args.potential)
    calc = load_calculator(cfg.potential, cfg.device)
    if args.cache is None:
        from structrepdiff.data.paths import default_cache_dir

        args.cache = default_cache_dir() / "hull"
    args.cache.mkdir(parents=True, exist_ok=True)
    hull = build_reference_hull(args.dataset, calc, cfg, args.cache, args.splits, args.data_dir,
                                fit_splits=args.fit_splits, progress=not args.no_progress)
    atomic_write(args.out, hull.save, force=True, suffix="".join(args.out.suffixes))
    print(f"hull of {args.dataset} ({', '.join(args.splits)}): {len(hull.points)} points, "
          f"{len(hull.mu)} chemical potentials -> {args.out}")
    return 0
