"""`structrepdiff train`: fit a DDPM on the representation vectors of a training split."""

from __future__ import annotations

import argparse
from pathlib import Path

from structrepdiff.diffusion.denoisers import DenoiserConfig
from structrepdiff.pipeline.train import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a diffusion model on R",
        description="Featurise the training split (cached in --out), hold out a seeded "
        "fraction for the validation loss, fit the scaler, and train a denoiser with Adam and "
        "EMA weights. Writes --out/checkpoint.pt (atomically, every --checkpoint-every steps) "
        "and --out/metrics.jsonl. The public data has no train split: train on val.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="dataset name, e.g. perov_5")
    src.add_argument("--features", type=Path, help=".npz from `featurize` instead")
    p.add_argument("--split", default=TrainConfig.split, help="training split")
    p.add_argument("--data-dir", help="folder holding DATASET/SPLIT.csv[.gz]")
    p.add_argument("--preset", default=TrainConfig.preset, help="EAD preset when featurising")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument(
        "--scaler",
        choices=["standard", "blockwise"],
        default=TrainConfig.scaler,
        help="standard: z-score per feature; blockwise: z-score, but the composition block "
        "mapped to [-1, 1] with one shared range (absent element = -1)",
    )
    p.add_argument(
        "--composition-weight",
        type=float,
        default=TrainConfig.composition_weight,
        help="weight of the composition block in the ε-MSE relative to the other features",
    )
    p.add_argument(
        "--conditional",
        action="store_true",
        help="model the structure given composition and N (they become inputs, not diffused)",
    )
    p.add_argument(
        "--cond-dropout",
        type=float,
        default=TrainConfig.cond_dropout,
        help="fraction of training rows with the condition dropped (for guidance)",
    )
    p.add_argument(
        "--space-groups",
        default=None,
        help="also condition on each crystal's space group (conditional models): a JSON file "
        "of {id: group} or describe rows, or 'auto' (pyxtal at 0.01 A, cached in --out)",
    )
    p.add_argument(
        "--group-dropout",
        type=float,
        default=TrainConfig.group_dropout,
        help="fraction of rows per batch trained with the group left open",
    )
    p.add_argument(
        "--min-snr-gamma",
        type=float,
        default=TrainConfig.min_snr_gamma,
        help="min-SNR-γ loss weighting over time steps (0: off)",
    )
    p.add_argument("--denoiser", choices=["mlp", "unet1d"], default=DenoiserConfig.kind)
    p.add_argument("--hidden", type=int, default=DenoiserConfig.hidden, help="mlp width")
    p.add_argument("--depth", type=int, default=DenoiserConfig.depth, help="mlp residual blocks")
    p.add_argument("--channels", type=int, default=DenoiserConfig.channels,
                   help="unet1d base channels")  # fmt: skip
    p.add_argument("--mults", type=int, nargs="+", default=list(DenoiserConfig.mults),
                   help="unet1d levels")  # fmt: skip
    p.add_argument("--dropout", type=float, default=DenoiserConfig.dropout)
    p.add_argument(
        "--gaussian-skip",
        action="store_true",
        help="learn a correction to the exact ε of a Gaussian fitted to the data",
    )
    p.add_argument("--steps", type=int, default=TrainConfig.steps, help="optimiser steps in total")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay)
    p.add_argument("--T", type=int, default=TrainConfig.T, help="diffusion steps")
    p.add_argument("--holdout", type=float, default=TrainConfig.holdout,
                   help="fraction held out for val loss")  # fmt: skip
    p.add_argument("--eval-every", type=int, default=TrainConfig.eval_every)
    p.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--device", default=TrainConfig.device, help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from structrepdiff.pipeline.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    den = DenoiserConfig(
        kind=args.denoiser,
        dim=1,
        hidden=args.hidden,
        depth=args.depth,
        dropout=args.dropout,
        channels=args.channels,
        mults=tuple(args.mults),
        gaussian_skip=args.gaussian_skip,
    )
    cfg = TrainConfig(
        out=args.out, dataset=args.dataset, split=args.split, features=args.features,
        data_dir=args.data_dir, preset=args.preset, scaler=args.scaler,
        composition_weight=args.composition_weight, conditional=args.conditional,
        cond_dropout=args.cond_dropout, space_groups=args.space_groups,
        group_dropout=args.group_dropout, min_snr_gamma=args.min_snr_gamma,
        denoiser=den, T=args.T, lr=args.lr,
        batch_size=args.batch_size, steps=args.steps, ema_decay=args.ema_decay,
        holdout=args.holdout, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
        seed=args.seed, device=args.device, resume=args.resume, force=args.force,
        progress=not args.no_progress,
    )  # fmt: skip
    s = train(cfg)
    print(f"trained to step {s.step} in {s.seconds:.1f} s: train loss {s.train_loss:.4f}, "
          f"validation loss {s.val_loss:.4f} -> {s.checkpoint}")  # fmt: skip
    return 0
