"""End-to-end `structrepdiff generate` throughput (issue #16, deliverable 2): the same command
(default settings, bundled model, same seed, so the same sampled vectors) timed with this
checkout's code and with a baseline commit's, one after the other in one run. Each variant
runs in its own process; the baseline from a `git worktree` of ``--baseline``.
Results go to ``--out/<dataset>.json`` after every variant (a rerun skips variants done).

    git worktree add /tmp/base16 8e7a446
    python benchmarks/throughput.py --dataset perov_5 --num 1000 --baseline-src /tmp/base16/src

With ``--relax`` (issue 28): `generate` of ``--num`` crystals (on ``--scheduler``, as in the
rows above), then `relax` of that folder into its ``relaxed/`` (the two stages `generate
--relax` chains, with the same code and defaults, timed apart); then the first ``--paired`` of
those crystals relaxed again by the batched default and by the per-crystal ASE path
(``--relax-driver ase``), both with ``--relax-workers`` processes, one after the other, into
``--work/<dataset>_relax/``. Results in ``--out/<dataset>_relax.json``, written after every
stage (a rerun skips stages done).

    python benchmarks/throughput.py --relax --dataset mp_20 --num 1000 --paired 200
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


def _generate(src: Path, model: Path, num: int, out: Path, scheduler: str | None) -> float:
    """Wall seconds of one `generate` run with the package at ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    run = "from structrepdiff.cli.main import main; raise SystemExit(main())"
    cmd = [sys.executable, "-c", run, "generate", "--model", str(model), "--num", str(num),
           "--out", str(out), "--no-progress", "--force"]  # fmt: skip
    cmd += ["--scheduler", scheduler] if scheduler else []
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _cli(args: list[str]) -> float:
    """Wall seconds of one `structrepdiff` command (this checkout, one torch thread)."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    run = "from structrepdiff.cli.main import main; raise SystemExit(main())"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", run, *args, "--no-progress"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def _counts(folder: Path) -> dict[str, int]:
    rows = _rows(folder)
    return {s: sum(r["status"] == s for r in rows.values())
            for s in sorted({r["status"] for r in rows.values()})}  # fmt: skip


def relax_main(a: argparse.Namespace) -> None:
    """`generate --relax` end to end, and the batched vs per-crystal relaxation paired."""
    from structrepdiff.bundled import model_path

    work, path = a.work / f"{a.dataset}_relax", a.out / f"{a.dataset}_relax.json"
    gen = work / "generated"
    res = json.loads(path.read_text()) if path.exists() else {
        "dataset": a.dataset, "num": a.num, "paired": a.paired, "seed": 0,
        "machine": "2 vCPU, 1 torch thread per process, nothing else running",
        "settings": "generate and relax defaults", "stages": {}}  # fmt: skip
    base = ["generate", "--model", str(model_path(a.dataset)), "--num", str(a.num),
            "--out", str(gen), "--scheduler", a.scheduler]  # fmt: skip
    relax = ["relax", "--pred", str(gen), "--limit", str(a.paired), "--workers",
             str(a.relax_workers)]  # fmt: skip
    stages = {
        "generate": (base, None),
        "generate --relax (relaxation only)": (["relax", "--pred", str(gen), "--out",
                                                str(gen / "relaxed")], gen / "relaxed"),
        "paired: batched": ([*relax, "--out", str(work / "batched")], work / "batched"),
        "paired: per-crystal (ASE)": ([*relax, "--relax-driver", "ase", "--out",
                                      str(work / "ase")], work / "ase"),
    }
    for name, (cmd, folder) in stages.items():
        if name in res["stages"]:
            continue
        seconds = _cli(cmd)
        res["stages"][name] = {"seconds": round(seconds, 1), "command": " ".join(cmd),
                               "statuses": _counts(folder or gen),
                               "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        print(name, json.dumps(res["stages"][name]), flush=True)
        a.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1))
    st = res["stages"]
    res["summary"] = {
        "generate_relax_end_to_end_s": st["generate"]["seconds"]
        + st["generate --relax (relaxation only)"]["seconds"],
        "relax_per_crystal_s": st["generate --relax (relaxation only)"]["seconds"] / a.num,
        "paired_speedup": round(st["paired: per-crystal (ASE)"]["seconds"]
                                / st["paired: batched"]["seconds"], 2)}  # fmt: skip
    path.write_text(json.dumps(res, indent=1))
    print(json.dumps(res["summary"]), flush=True)


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="perov_5")
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--baseline-src", type=Path, help="src/ of the baseline")
    ap.add_argument("--relax", action="store_true", help="time generate --relax (issue 28)")
    ap.add_argument("--paired", type=int, default=200, help="crystals relaxed by both paths")
    ap.add_argument("--relax-workers", type=int, default=2)
    ap.add_argument("--baseline-name", default="8e7a446")
    ap.add_argument("--scheduler", default="local:2")
    ap.add_argument("--work", type=Path, default=Path("runs/throughput"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/throughput"))
    a = ap.parse_args()
    if a.relax:
        relax_main(a)
        return
    if a.baseline_src is None:
        ap.error("--baseline-src is required without --relax")
    from structrepdiff.bundled import model_path

    model = model_path(a.dataset)
    path = a.out / f"{a.dataset}.json"
    res = json.loads(path.read_text()) if path.exists() else {
        "dataset": a.dataset, "num": a.num, "model": str(model), "scheduler": a.scheduler,
        "machine": "2 vCPU, 1 torch thread per process", "seed": 0,
        "settings": "generate defaults (DDIM-100, templates auto = val, TEMPLATE_BUDGET)",
        "variants": {}}  # fmt: skip
    for name, src in ((a.baseline_name, a.baseline_src), ("this checkout", SRC)):
        if name in res["variants"]:
            continue
        out = a.work / a.dataset / name.replace(" ", "_")
        seconds = _generate(src, model, a.num, out, a.scheduler)
        rows = _rows(out)
        loss = np.array([float(r["loss"]) for r in rows.values() if r["loss"]])
        res["variants"][name] = {
            "seconds": round(seconds, 1), "out": str(out),
            "statuses": {s: sum(r["status"] == s for r in rows.values())
                         for s in sorted({r["status"] for r in rows.values()})},
            "median_loss": float(np.median(loss)), "mean_steps": float(np.mean(
                [int(r["steps"]) for r in rows.values() if r["steps"]])),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        print(name, json.dumps(res["variants"][name]), flush=True)
        a.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1))
    base, new = (res["variants"][k] for k in (a.baseline_name, "this checkout"))
    rb, rn = _rows(Path(base["out"])), _rows(Path(new["out"]))
    va = np.load(Path(base["out"]) / "samples.npz")["R"]
    vb = np.load(Path(new["out"]) / "samples.npz")["R"]
    common = [k for k in rb if rb[k]["loss"] and rn.get(k, {}).get("loss")]
    ratio = np.array([float(rn[k]["loss"]) / float(rb[k]["loss"]) for k in common])
    res["comparison"] = {
        "same_vectors": bool(va.shape == vb.shape and np.array_equal(va, vb)),
        "speedup": round(base["seconds"] / new["seconds"], 2),
        "loss_ratio_new_over_base": {"median": float(np.median(ratio)),
                                     "p90": float(np.quantile(ratio, 0.9)),
                                     "max": float(ratio.max())}}  # fmt: skip
    path.write_text(json.dumps(res, indent=1))
    print(json.dumps(res["comparison"]), flush=True)


if __name__ == "__main__":
    main()
