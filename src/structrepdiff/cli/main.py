"""`structrepdiff` command line: parse arguments, build a config, call one library function."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from structrepdiff import __version__


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each sub-command module registers itself."""
    from structrepdiff.cli import (
        composition_cmd,
        data_cmd,
        evaluate_cmd,
        export_cmd,
        featurize_cmd,
        generate_cmd,
        reconstruct_cmd,
        relax_cmd,
        sample_cmd,
        templates_cmd,
        train_cmd,
    )

    parser = argparse.ArgumentParser(
        prog="structrepdiff",
        description="Crystal generation by diffusion on invariant EAD representations.",
    )
    parser.add_argument("--version", action="version", version=f"structrepdiff {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    featurize_cmd.register(sub)
    reconstruct_cmd.register(sub)
    relax_cmd.register(sub)
    templates_cmd.register(sub)
    train_cmd.register(sub)
    sample_cmd.register(sub)
    generate_cmd.register(sub)
    export_cmd.register(sub)
    composition_cmd.register(sub)
    data_cmd.register(sub)
    evaluate_cmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, OSError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
