"""`structrepdiff templates`: known crystals of a training split, as reconstruction starts."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "templates",
        help="build a template file of starting points for reconstruct --templates",
        description="Parse a dataset split (use the training split) and store every crystal's "
        "Niggli cell, species and fractional coordinates. `reconstruct --templates FILE` then "
        "starts each trial from a template with the same species-count pattern.",
    )
    p.add_argument("--dataset", required=True, help="dataset name, e.g. mp_20")
    p.add_argument("--split", help="split to read (default: the training split: train where "
                   "the data has it, else val)")  # fmt: skip
    p.add_argument("--data-dir", type=Path, help="folder holding DATASET/SPLIT.csv[.gz]")
    p.add_argument("--out", required=True, type=Path, help="output .npz")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from structrepdiff.data.io import load_split
    from structrepdiff.features import atomic_write
    from structrepdiff.reconstruct.templates import TemplateSet, training_split

    if args.out.exists() and not args.force:
        raise FileExistsError(f"{args.out} exists; pass --force to overwrite")
    args.split = args.split or training_split(args.dataset, args.data_dir)
    loaded = load_split(args.dataset, args.split, args.data_dir, progress=not args.no_progress)
    ts = TemplateSet.from_structures(loaded.ids, loaded.structures)
    atomic_write(args.out, ts.save, force=args.force, suffix=".npz")
    print(f"{len(ts)} templates from {args.dataset}/{args.split} -> {args.out}")
    for reason, n in loaded.reason_counts().most_common():
        print(f"  skipped {n:6d}  {reason}")
    return 0
