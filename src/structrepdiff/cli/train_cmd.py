"""`structrepdiff train`: fit a DDPM on the representation vectors of a training split."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--split", default="val", help="training split (default: val)")
    p.add_argument("--data-dir", help="folder holding DATASET/SPLIT.csv[.gz]")
    p.add_argument("--preset", default="small", help="EAD preset when featurising")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument(
        "--scaler",
        choices=["standard", "blockwise"],
        default="standard",
        help="standard: z-score per feature; blockwise: z-score, but the composition block "
        "mapped to [-1, 1] with one shared range (absent element = -1)",
    )
    p.add_argument(
        "--composition-weight",
        type=float,
        default=1.0,
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
        default=0.1,
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
        default=None,
        help="fraction of rows per batch trained with the group left open (default: "
        "TrainConfig's, 0.3)",
    )
    p.add_argument(
        "--min-snr-gamma",
        type=float,
        default=0.0,
        help="min-SNR-γ loss weighting over time steps (0: off)",
    )
    p.add_argument("--denoiser", choices=["mlp", "unet1d"], default="mlp")
    p.add_argument("--hidden", type=int, default=1024, help="mlp width")
    p.add_argument("--depth", type=int, default=4, help="mlp residual blocks")
    p.add_argument("--channels", type=int, default=64, help="unet1d base channels")
    p.add_argument("--mults", type=int, nargs="+", default=[1, 2, 4, 8], help="unet1d levels")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument(
        "--gaussian-skip",
        action="store_true",
        help="learn a correction to the exact ε of a Gaussian fitted to the data",
    )
    p.add_argument("--steps", type=int, default=20_000, help="optimiser steps in total")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--T", type=int, default=2000, help="diffusion steps")
    p.add_argument("--holdout", type=float, default=0.05, help="fraction held out for val loss")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from structrepdiff.diffusion.denoisers import DenoiserConfig
    from structrepdiff.pipeline.train import TrainConfig, train

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
        **({} if args.group_dropout is None else {"group_dropout": args.group_dropout}),
        min_snr_gamma=args.min_snr_gamma,
denoiser=den, T=args.T,
        lr=args.lr,
        batch_size=args.batch_size, steps=args.steps, ema_decay=args.ema_decay,
        holdout=args.holdout, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
        seed=args.seed, device=args.device, resume=args.resume, force=args.force,
        progress=not args.no_progress,
    )  # fmt: skip
    s = train(cfg)
    print(f"trained to step {s.step} in {s.seconds:.1f} s: train loss {s.train_loss:.4f}, "
          f"validation loss {s.val_loss:.4f} -> {s.checkpoint}")  # fmt: skip
    return 0
