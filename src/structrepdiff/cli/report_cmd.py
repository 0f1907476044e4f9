"""`structrepdiff report RUN`: one self-contained report.html for a generate run."""

from __future__ import annotations

import argparse
from pathlib import Path

from structrepdiff.report import ReportConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a self-contained report.html for a generate run",
                       description="Summary, metrics beside the data's, pictures and a table of "
                       "crystals (with a picture each and links to the CIFs) in one HTML file "
                       "that opens with no network.")  # fmt: skip
    p.add_argument("run", type=Path, help="output folder of `generate` (or `reconstruct`)")
    p.add_argument("--out", type=Path, help="output file (default: RUN/report.html)")
    p.add_argument("--dataset", help="dataset (default: from the evaluation or the model)")
    p.add_argument(
        "--data",
        type=Path,
        help="`evaluate generation` folder of data crystals for the data column",
    )
    p.add_argument("--data-dir", help="folder holding DATASET/SPLIT.csv[.gz]")
    p.add_argument("--limit", type=int, default=ReportConfig.limit,
                   help="crystals drawn in the table")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from structrepdiff.report import ReportConfig, build_report

    out = build_report(ReportConfig(run=args.run, out=args.out, dataset=args.dataset,
                                    data=args.data, data_dir=args.data_dir, limit=args.limit,
                                    force=args.force))  # fmt: skip
    print(f"report -> {out}")
    return 0
