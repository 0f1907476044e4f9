"""Processes against threads on this machine's 2 cores (issue #16, deliverable 2 lever): the
same vectors reconstructed by `structrepdiff reconstruct` (defaults) with one process of one
torch thread, one process of two threads, and two single-threaded Dask workers
(`--scheduler local:2`), one after the other in one run. Vectors: ``--num`` samples of the
bundled model (seed 0). Writes ``--out/<dataset>.json``.

    python benchmarks/threads_lever.py --dataset mp_20 --num 96
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from structrepdiff.bundled import model_path
from structrepdiff.pipeline.sample import SampleConfig, sample

VARIANTS = {"1 process, 1 thread": (1, None), "1 process, 2 threads": (2, None),
            "2 processes (local:2)": (1, "local:2")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--num", type=int, default=96)
    ap.add_argument("--work", type=Path, default=Path("runs/threads_lever"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/threads_lever"))
    a = ap.parse_args()
    work = a.work / a.dataset
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    vectors = work / "samples.npz"
    sample(SampleConfig(model=model_path(a.dataset), out=vectors, num=a.num,
                        progress=False, force=True))  # fmt: skip
    seconds, rows = {}, {}
    run = "from structrepdiff.cli.main import main; raise SystemExit(main())"
    for name, (threads, scheduler) in VARIANTS.items():
        out = work / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        cmd = [sys.executable, "-c", run, "reconstruct", "--representations", str(vectors),
               "--out", str(out), "--no-progress"] + (["--scheduler", scheduler] if scheduler
                                                      else [])  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        seconds[name] = round(time.perf_counter() - t0, 1)
        with open(out / "summary.csv", newline="") as fh:
            rows[name] = {r["id"]: (r["status"], r["loss"]) for r in csv.DictReader(fh)}
        print(name, seconds[name], flush=True)
    first = next(iter(VARIANTS))
    result = {"dataset": a.dataset,
              "vectors": f"{a.num} samples of the bundled {a.dataset} model, seed 0",
              "seconds": seconds, "speedup_vs_1_thread": {k: round(seconds[first] / v, 2)
                                                          for k, v in seconds.items()},
              "same_crystals_as_1_thread": {k: rows[k] == rows[first] for k in rows},
              "machine": "2 vCPU",
              "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.dataset}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
