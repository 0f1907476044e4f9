"""Featurization throughput and peak memory of an EAD preset on each dataset's split.

Each (dataset, preset, dtype) measurement runs in a fresh subprocess, so its peak RSS is its own.
The worker parses the CIFs first (timed apart, not counted in the rate), then times the encoding
(canonicalisation included) with ``iter_batches``. Results are written incrementally to a JSON
file (resumable; ``--force`` re-measures) and summarised as a Markdown table next to it.

    python benchmarks/featurize.py --limit 100 --preset paper
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "featurize.json"
DTYPE_NAMES = ("float64", "float32")
KEY_FIELDS = ("dataset", "split", "preset", "dtype", "limit", "seed", "batch_size")
TABLE_HEADER = (
    "| dataset | split | rows (subset/full) | preset | dtype | mean atoms | crystals/s "
    "| ms/crystal | peak RSS MiB |"
)
STDERR_TAIL = 3000


# ----------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of both the parent and the ``--worker`` mode."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["perov_5", "carbon_24", "mp_20"])
    p.add_argument("--split", default="test")
    p.add_argument("--preset", default="paper")
    p.add_argument(
        "--dtype",
        nargs="+",
        action="append",
        help="float64 and/or float32 (repeatable, space- or comma-separated list; default both)",
    )
    p.add_argument("--limit", type=int, default=200, help="rows per dataset; 0 = full split")
    p.add_argument("--seed", type=int, default=0, help="seed of the random row subset")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in the worker")
    p.add_argument(
        "--data-dir",
        default=None,
        help="data directory (default: $STRUCTREPDIFF_DATA, then ../shared/data)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--force", action="store_true", help="re-measure keys already in --out")
    p.add_argument("--timeout", type=float, default=None, help="seconds per worker (default none)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.dtypes = _flatten_dtypes(args.dtype)
    if bad := [d for d in args.dtypes if d not in DTYPE_NAMES]:
        p.error(f"unknown --dtype {', '.join(bad)}; choose from {', '.join(DTYPE_NAMES)}")
    if args.limit < 0 or args.batch_size < 1 or args.threads < 1:
        p.error("--limit must be >= 0, --batch-size and --threads >= 1")
    return args


def _flatten_dtypes(groups: list[list[str]] | None) -> list[str]:
    """Unique dtypes from repeated/list ``--dtype`` options, in order; default both."""
    flat = [d for g in groups or [list(DTYPE_NAMES)] for item in g for d in item.split(",") if d]
    return list(dict.fromkeys(flat))


# ----------------------------------------------------------------------------- worker


def max_rss_mib() -> float:
    """Peak resident set size of this process so far in MiB (ru_maxrss is KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def select_rows(n_rows: int, limit: int, seed: int) -> tuple[list[int], str]:
    """Row indices to use: a sorted seeded random subset if ``limit`` is below ``n_rows``."""
    import numpy as np

    if limit == 0 or limit >= n_rows:
        return list(range(n_rows)), "full"
    idx = np.random.default_rng(seed).choice(n_rows, size=limit, replace=False)
    return sorted(int(i) for i in idx), "subset"


def parse_selection(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Read the split, select rows and parse them; returns the structures and parse facts."""
    from structrepdiff.data.io import parse_rows, read_cdvae_csv, split_path
    from structrepdiff.data.registry import get_dataset

    info = get_dataset(args.dataset)
    path = split_path(args.data_dir, args.dataset, args.split)
    t0 = time.perf_counter()
    df = read_cdvae_csv(path)
    rows, kind = select_rows(len(df), args.limit, args.seed)
    sub = df.iloc[rows]
    pairs = zip(sub["material_id"].astype(str), sub["cif"], strict=True)
    loaded = parse_rows(pairs, info.atomic_numbers, info.n_max, total=len(sub))
    facts = {
        "csv": str(path),
        "split_rows": len(df),
        "n_rows": len(rows),
        "rows_kind": kind,
        "n_skipped_parse": len(loaded.skipped),
        "parse_s": time.perf_counter() - t0,
    }
    return loaded, facts


def time_encoding(structures: list, args: argparse.Namespace) -> dict[str, Any]:
    """Encode with ``iter_batches`` (canonicalisation included) and time it."""
    import numpy as np

    from structrepdiff.data.registry import get_dataset
    from structrepdiff.descriptor.config import get_preset
    from structrepdiff.pipeline.featurize import DTYPES
    from structrepdiff.representation.encode import Representation, iter_batches

    info = get_dataset(args.dataset)
    rep = Representation(get_preset(args.preset), info.atomic_numbers, info.n_max)
    dtype, n_finite, first = DTYPES[args.dtypes[0]], 0, None
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    for R in iter_batches(structures, rep, batch_size=args.batch_size, dtype=dtype):
        n_finite += int(np.isfinite(R).all(axis=1).sum())
        first = time.perf_counter() - t0 if first is None else first
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "encode_s": seconds,
        "encode_cpu_s": cpu,
        "first_batch_s": first,
        "n_finite": n_finite,
        "dim": rep.layout.dim,
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": os.getloadavg()[0],
    }


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this (fresh) process; the result as a dict."""
    import torch

    torch.set_num_threads(args.threads)
    loaded, facts = parse_selection(args)
    rss_parsed = max_rss_mib()
    enc = time_encoding(loaded.structures, args)
    rss_peak = max_rss_mib()
    n = len(loaded.structures)
    atoms = [len(s) for s in loaded.structures]
    return {
        **facts,
        **enc,
        "n": n,
        "mean_atoms": sum(atoms) / n if n else float("nan"),
        "crystals_per_s": n / enc["encode_s"] if enc["encode_s"] > 0 else float("nan"),
        "ms_per_crystal": 1e3 * enc["encode_s"] / n if n else float("nan"),
        "peak_rss_mib": rss_peak,
        "peak_rss_after_parse_mib": rss_parsed,
        "rss_increase_encode_mib": rss_peak - rss_parsed,
        "torch_threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------------------- parent


def measurement_key(m: dict[str, Any]) -> tuple:
    """The resume key of a measurement."""
    return tuple(m.get(k) for k in KEY_FIELDS)


def machine_info() -> dict[str, Any]:
    """CPU, OS and library versions of this machine."""
    import torch

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        model = names[0] if names else ""
    return {
        "device": "CPU",
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
        "cpu_model": model,
        "uname": " ".join(platform.uname()),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def load_results(path: Path) -> dict[str, Any]:
    """Existing results file, or an empty one."""
    if path.is_file():
        return json.loads(path.read_text())
    return {"measurements": []}


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_results(path: Path, results: dict[str, Any]) -> None:
    """Write the JSON and the Markdown table next to it (both atomically)."""
    write_atomic(path, json.dumps(results, indent=2, sort_keys=False) + "\n")
    write_atomic(path.with_suffix(".md"), markdown_report(results))


def worker_command(args: argparse.Namespace, dataset: str, dtype: str) -> list[str]:
    """Command line of the worker subprocess for one measurement."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--dataset",
        dataset,
        "--split",
        args.split,
        "--preset",
        args.preset,
        "--dtype",
        dtype,
        "--limit",
        str(args.limit),
        "--seed",
        str(args.seed),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
    ]
    return cmd + (["--data-dir", str(args.data_dir)] if args.data_dir else [])


def measure(args: argparse.Namespace, dataset: str, dtype: str) -> dict[str, Any]:
    """Run one worker; its parsed result, or an error record with the stderr tail."""
    base = {
        "dataset": dataset,
        "split": args.split,
        "preset": args.preset,
        "dtype": dtype,
        "limit": args.limit,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "date": dt.datetime.now().astimezone().isoformat(),
    }
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            worker_command(args, dataset, dtype),
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-STDERR_TAIL:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return {**base, "error": f"timeout after {args.timeout} s", "stderr_tail": tail}
    base["wall_s"] = time.perf_counter() - t0
    try:
        return {**base, **json.loads(proc.stdout.strip().splitlines()[-1])}
    except (IndexError, json.JSONDecodeError):
        return {
            **base,
            "error": f"worker exited with code {proc.returncode}",
            "stderr_tail": proc.stderr[-STDERR_TAIL:],
        }


def _fmt(x: Any, spec: str) -> str:
    """Format a number, or '–' when missing."""
    return format(x, spec) if isinstance(x, int | float) else "–"


def table_row(m: dict[str, Any]) -> str:
    """One Markdown table row of a measurement."""
    if "error" in m:
        rows = f"error: {m['error']}"
    elif m["rows_kind"] == "subset":
        rows = f"{m['n_rows']} of {m['split_rows']} (subset, seed {m['seed']})"
    else:
        rows = f"{m['n_rows']} (full)"
    cells = [
        m["dataset"],
        m["split"],
        rows,
        m["preset"],
        m["dtype"],
        _fmt(m.get("mean_atoms"), ".2f"),
        _fmt(m.get("crystals_per_s"), ".2f"),
        _fmt(m.get("ms_per_crystal"), ".1f"),
        _fmt(m.get("peak_rss_mib"), ".0f"),
    ]
    return "| " + " | ".join(map(str, cells)) + " |"


def markdown_report(results: dict[str, Any]) -> str:
    """Markdown table of all measurements with a short header on machine and command."""
    mach = results.get("machine", {})
    cpu = mach.get("cpu_model") or mach.get("processor")
    lines = [
        f"# Featurization throughput ({results.get('date', '')})",
        "",
        f"Machine: {mach.get('device', 'CPU')}, {cpu}, {mach.get('cpu_count')} logical CPUs;"
        f" torch {mach.get('torch')}.",
        "",
        f"Command: `{results.get('command', '')}`",
        "",
        "Encode time only (canonicalisation + EAD + R); CIF parsing is excluded. "
        "torch threads per measurement: "
        + ", ".join(sorted({str(m.get("threads")) for m in results["measurements"]}))
        + ".",
        "",
        TABLE_HEADER,
        "|" + "---|" * 9,
    ]
    lines += [table_row(m) for m in results["measurements"]]
    return "\n".join(lines) + "\n"


def run_parent(args: argparse.Namespace) -> dict[str, Any]:
    """Run every missing measurement, saving after each one; returns the results."""
    from tqdm.auto import tqdm

    results = load_results(args.out)
    results.update(
        machine=machine_info(),
        date=dt.datetime.now().astimezone().isoformat(),
        command=" ".join([Path(sys.executable).name, *sys.argv]),
        seed=args.seed,
        split=args.split,
    )
    todo = [(d, t) for d in args.datasets for t in args.dtypes]
    bar = tqdm(todo, desc="measurements", unit="run")
    for dataset, dtype in bar:
        bar.set_postfix_str(f"{dataset} {args.preset} {dtype}")
        key = (dataset, args.split, args.preset, dtype, args.limit, args.seed, args.batch_size)
        done = [m for m in results["measurements"] if measurement_key(m) == key]
        if any("error" not in m for m in done) and not args.force:
            continue  # measured already; failed attempts are retried
        m = measure(args, dataset, dtype)
        results["measurements"] = [x for x in results["measurements"] if x not in done] + [m]
        save_results(args.out, results)
    save_results(args.out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point: the worker prints one JSON line; the parent prints the Markdown table."""
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)), flush=True)
        return 0
    results = run_parent(args)
    print(markdown_report(results))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 1 if any("error" in m for m in results["measurements"]) else 0


if __name__ == "__main__":
    sys.exit(main())
