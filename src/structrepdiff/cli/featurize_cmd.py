"""`structrepdiff featurize`: a dataset split or CIF files -> one .npz with R."""

from __future__ import annotations

import argparse
from pathlib import Path

from structrepdiff.cli import codes
from structrepdiff.data.registry import DATASETS
from structrepdiff.descriptor.config import PRESETS
from structrepdiff.pipeline.featurize import FeaturizeConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "featurize",
        help="encode crystals into representation vectors R (.npz)",
        description="Encode a dataset split (--dataset/--split) or CIF files (--cif with "
        "--elements-from) into R and write one .npz with R, ids, block layout and elements.",
    )
    src = p.add_argument_group("input")
    src.add_argument("--dataset", choices=sorted(DATASETS), help="benchmark dataset")
    src.add_argument("--split", help="split name: train, val or test")
    src.add_argument("--cif", nargs="+", metavar="PATH", help="CIF files or folders of *.cif")
    src.add_argument(
        "--elements-from",
        choices=sorted(DATASETS),
        help="dataset whose element vocabulary and N_max apply to --cif input",
    )
    src.add_argument(
        "--data-dir", help="data directory (default: $STRUCTREPDIFF_DATA, then ../shared/data)"
    )
    p.add_argument("--out", required=True, type=Path, help="output .npz")
    p.add_argument(
        "--preset",
        default=FeaturizeConfig.preset,
        choices=sorted(PRESETS),
        help="EAD preset (small: what the bundled models use; paper: R_c = 20 Å)",
    )
    p.add_argument("--dtype", default=FeaturizeConfig.dtype, choices=["float32", "float64"])
    p.add_argument("--batch-size", type=int, default=FeaturizeConfig.batch_size,
                   help="crystals per EAD batch")  # fmt: skip
    p.add_argument("--limit", type=int, help="only the first N rows")
    p.add_argument("--device", default=FeaturizeConfig.device,
                   help="torch device of the EAD (cpu, cuda, cuda:1)")  # fmt: skip
    p.add_argument(
        "--save-scaler",
        type=Path,
        metavar="PATH",
        help="also fit a per-feature scaler on these R rows and save it (.npz)",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out (and --save-scaler)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from structrepdiff.pipeline.featurize import FeaturizeConfig, featurize

    cfg = FeaturizeConfig(
        out=args.out,
        dataset=args.dataset,
        split=args.split,
        cif=tuple(args.cif or ()),
        elements_from=args.elements_from,
        data_dir=args.data_dir,
        preset=args.preset,
        dtype=args.dtype,
        batch_size=args.batch_size,
        limit=args.limit,
        force=args.force,
        progress=not args.no_progress,
        scaler_out=args.save_scaler,
        device=args.device,
    )
    s = featurize(cfg)
    print(
        f"featurized {s.n_ok} crystals -> {s.out} in {s.seconds:.1f} s "
        f"({s.n_ok / max(s.seconds, 1e-9):.2f} crystals/s); skipped {len(s.skipped)}"
    )
    if args.save_scaler:
        print(f"scaler fitted on these {s.n_ok} rows -> {args.save_scaler}")
    for reason, n in s.reason_counts().most_common():
        print(f"  skipped {n:6d}  {reason}")
    return codes.OK if s.n_ok else codes.NOTHING
