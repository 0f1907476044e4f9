"""`structrepdiff` command line: parse arguments, build a config, call one library function."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from collections.abc import Sequence

from structrepdiff import __version__
from structrepdiff.cli import codes


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each sub-command module registers itself."""
    from structrepdiff.cli import (
        composition_cmd,
        data_cmd,
        evaluate_cmd,
        export_cmd,
        featurize_cmd,
        generate_cmd,
        hull_cmd,
        plot_cmd,
        reconstruct_cmd,
        relax_cmd,
        report_cmd,
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
    hull_cmd.register(sub)
    evaluate_cmd.register(sub)
    plot_cmd.register(sub)
    report_cmd.register(sub)
    show_defaults(parser)
    return parser


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option of every (nested) sub-command shows its default in --help; the defaults
    themselves come from the config dataclasses the commands build."""
    for action in parser._actions:  # argparse keeps no public list of them
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                show_defaults(child)
            continue
        d = action.default
        no_default = d is None or d is False or d is argparse.SUPPRESS or d in ([], ())
        no_default = no_default or action.nargs == 0  # a flag: its default is its absence
        if (
            action.option_strings
            and action.help is not argparse.SUPPRESS
            and not no_default
            and "default" not in (action.help or "")
        ):  # fmt: skip (said already)
            action.help = f"{action.help or ''} (default: %(default)s)".strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    previous = interrupt_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        from pathlib import Path

        from structrepdiff.data.run_folder import LOCK

        o = Path(out) if out else None
        if o is not None and o.exists() and (o.is_file() or any(
                p.name != LOCK for p in o.iterdir())):  # fmt: skip
            print(f"interrupted: finished work is saved in {out}; the same command resumes it",
                  file=sys.stderr)  # fmt: skip
        else:
            print("interrupted: nothing was written yet", file=sys.stderr)
        return codes.INTERRUPTED
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        return _error(exc, codes.INPUT)
    except ImportError as exc:
        return _error(exc, codes.DEPENDENCY)
    except OSError as exc:  # a full disk, a permission, a vanished mount
        return _error(exc, codes.IO)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm():
    """Make SIGTERM end a command like Ctrl-C does (worker pools terminated, partial work
    saved, one line said); returns the previous handler (None off the main thread)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def as_flags(text: str) -> str:
    """A library message in the CLI's words: the library names parameters in backticks
    (```force`=True``, ```batch_size```), the command line has flags (``--force``,
    ``--batch-size``)."""

    def flag(m: re.Match) -> str:
        return "--" + m[1].replace("_", "-")

    text = re.sub(r"`(\w+)`=True\b", flag, text)
    text = re.sub(r"`(\w+)`=", lambda m: flag(m) + " ", text)
    return re.sub(r"`(\w+)`", flag, text)


def _error(exc: BaseException, code: int) -> int:
    """Print ``exc`` as one line (a library's multi-line message folded, its parameter names
    turned into flags) and return code."""
    text = as_flags(" ".join(str(exc).split())) or type(exc).__name__
    print(f"error: {text[:500]}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
