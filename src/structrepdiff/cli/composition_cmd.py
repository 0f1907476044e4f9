"""`structrepdiff train-composition`: fit p(composition, N) to a training feature file."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-composition",
        help="train the composition model p(composition, N) on a feature file",
        description="Fit the autoregressive (element, count) model to the compositions of "
        "--features (e.g. runs/features/mp_20_val_small.npz) and write it to --out; bundle "
        "it with a conditional structure model by `export --composition-model`.",
    )
    p.add_argument("--features", required=True, type=Path, help="training .npz from `featurize`")
    p.add_argument("--out", required=True, type=Path, help="output .pt")
    from structrepdiff.composition.train import CompositionTrainConfig

    d = CompositionTrainConfig()
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--hidden", type=int, default=d.hidden)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from structrepdiff.composition.train import (
        CompositionTrainConfig,
        counts_from_features,
        save_composition_model,
        train_composition,
    )
    from structrepdiff.features import load_features

    if args.out.exists() and not args.force:
        raise FileExistsError(f"{args.out} exists; pass --force to overwrite")
    if args.threads:
        torch.set_num_threads(args.threads)
    fs = load_features(args.features)
    cfg = CompositionTrainConfig(steps=args.steps, lr=args.lr, hidden=args.hidden,
                                 dropout=args.dropout, eval_every=args.eval_every,
                                 seed=args.seed)  # fmt: skip
    model, record = train_composition(counts_from_features(fs), fs.rep.atomic_numbers,
                                      fs.rep.n_max, cfg, progress=not args.no_progress)  # fmt: skip
    record["features"] = str(args.features)
    save_composition_model(model, record, args.out, args.force)
    print(f"trained the composition model on {record['n_train']} compositions: best "
          f"validation NLL {record['best_val_nll']:.3f} -> {args.out}")  # fmt: skip
    return 0
