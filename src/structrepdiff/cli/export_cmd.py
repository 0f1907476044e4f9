"""`structrepdiff export`: a small, sampling-only copy of a trained model checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from structrepdiff.pipeline.checkpoint import EXPORT_DTYPE, EXPORT_DTYPES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a sampling-only copy of a checkpoint (EMA weights, half precision)",
        description="Keep what `sample` / `generate` need (representation, scaler, network "
        "config, EMA weights, training record) and drop the training weights, optimizer and "
        "RNG state; the weights are stored in --dtype. The copy cannot resume training.",
    )
    p.add_argument("--model", required=True, type=Path, help="checkpoint.pt from `train`")
    p.add_argument("--out", required=True, type=Path, help="output .pt")
    p.add_argument("--dtype", choices=EXPORT_DTYPES, default=EXPORT_DTYPE,
                   help="storage type of the weights (default: float16)")  # fmt: skip
    p.add_argument("--composition-model", type=Path,
                   help="bundle this composition model (from `train-composition`) with a "
                   "conditional model, so that `generate` without --formula samples "
                   "compositions")  # fmt: skip
    p.add_argument("--space-group-prior", default=None,
                   help="bundle a space-group prior p(group, Wyckoff pattern | composition): "
                   "'auto' fits it on the model's training split, or a file saved from "
                   "LearnedPrior.state()")  # fmt: skip
    p.add_argument("--generation-prior", default=None,
                   help="bundle a second prior that draws the groups of sampled compositions "
                   "(generate without --formula); 'auto' fits it on pyxtal labels at the "
                   "evaluator's tolerance (symmetry.learned.GENERATION_TOL), or a file as "
                   "above. Without it "
                   "--space-group-prior does both")  # fmt: skip
    p.add_argument("--templates", action="store_true",
                   help="bundle the template crystals of the model's training split (and, "
                   "with a prior, the split on Wyckoff parameters), so that generate and the "
                   "API start reconstruction from them without a data directory")  # fmt: skip
    p.add_argument("--data-dir", default=None,
                   help="dataset folder for the 'auto' priors and --templates (default: "
                   "$STRUCTREPDIFF_DATA, else ../shared/data)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from structrepdiff.pipeline.checkpoint import export_checkpoint

    rec = export_checkpoint(args.model, args.out, args.dtype, args.force, args.composition_model,
                            args.space_group_prior, args.data_dir,
                            args.generation_prior, args.templates)  # fmt: skip
    size = args.out.stat().st_size / 1e6
    print(f"exported {args.model} (step {rec['step']}, {rec['n_parameters']:,} parameters, "
          f"{rec['dtype']}) -> {args.out} ({size:.1f} MB)")  # fmt: skip
    return 0
