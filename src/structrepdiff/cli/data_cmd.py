"""`structrepdiff data download DATASET`: fetch the public CDVAE CSVs into the data directory."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from structrepdiff.data.download import DownloadError, DownloadResult, download_dataset
from structrepdiff.data.paths import DEFAULT_DOWNLOAD_DIR, ENV_VAR
from structrepdiff.data.registry import CDVAE_BASE_URL, DATASETS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` command (with its ``download`` sub-command) to ``sub``."""
    data = sub.add_parser("data", help="manage the benchmark datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser(
        "download",
        help="download the CDVAE CSVs of a dataset",
        description=(
            "Download the original CDVAE CSV splits to DIR/DATASET/SPLIT.csv, resuming "
            "interrupted transfers and verifying size and sha256. DIR is --data-dir, else "
            f"${ENV_VAR}, else {DEFAULT_DOWNLOAD_DIR}."
        ),
    )
    p.add_argument("dataset", choices=list(DATASETS), help="dataset name")
    p.add_argument(
        "--split", action="append", dest="splits", metavar="SPLIT",
        help="split to download (repeatable; default: all splits)",
    )  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None, help="destination directory")
    p.add_argument("--base-url", default=CDVAE_BASE_URL, help="URL holding DATASET/SPLIT.csv")
    p.add_argument("--force", action="store_true", help="download again even if present")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run_download)


def _destination(data_dir: Path | None) -> Path:
    """--data-dir, else $STRUCTREPDIFF_DATA, else the download cache; created if missing."""
    if data_dir is not None:
        dest = Path(data_dir).expanduser()
    elif os.environ.get(ENV_VAR):
        dest = Path(os.environ[ENV_VAR]).expanduser()
    else:
        dest = DEFAULT_DOWNLOAD_DIR
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def _describe(result: DownloadResult) -> str:
    """One human-readable line about a downloaded (or skipped) split."""
    if result.skipped:
        how = "already present, skipped"
    elif result.resumed_from:
        how = f"resumed from byte {result.resumed_from}"
    else:
        how = "downloaded"
    return f"{result.path}  {result.n_bytes} bytes  verified: {result.verified}  ({how})"


def run_download(args: argparse.Namespace) -> int:
    """Run ``data download``; returns the exit code (2 on a failed download)."""
    dest = _destination(args.data_dir)
    try:
        results = download_dataset(
            args.dataset, dest, splits=args.splits, base_url=args.base_url,
            force=args.force, progress=args.progress,
        )  # fmt: skip
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(_describe(result))
    n_skipped = sum(r.skipped for r in results)
    print(
        f"{args.dataset}: {len(results)} split(s) in {dest / args.dataset}, "
        f"{sum(r.n_bytes for r in results)} bytes "
        f"({len(results) - n_skipped} downloaded, {n_skipped} already present)"
    )
    return 0
