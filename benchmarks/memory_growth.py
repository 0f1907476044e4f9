"""Memory and time of reconstruction against atom count and R_c (issue #16, deliverable 5):
the peak resident memory that one batch of 8 crystals adds while it takes ``--steps`` Adam
steps (forward + backward, float32, the default batch), and its ms per crystal-step (the
steps include neighbour-list rebuilds), measured in a fresh process per setting
(Linux: the high-water mark is reset through /proc/self/clear_refs just before the descent).
Crystals: seeded MP-20 test crystals in atom-count bins. Settings: the `small` preset's
Gaussians with R_c = 6 (the preset), 10, 15 and 20 Å, and the `paper` preset (R_c = 20 Å,
a finer and longer Gaussian grid). Writes ``--out`` JSON.

    python benchmarks/memory_growth.py --steps 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BINS = ((2, 4), (5, 8), (9, 12), (13, 16), (17, 20))
SETTINGS = ("small", "small@10", "small@15", "small@20", "paper")


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def child(setting: str, lo: int, hi: int, steps: int, seed: int) -> dict:
    """One measurement, in this (fresh) process."""
    import dataclasses

    import numpy as np
    import torch

    from structrepdiff.data.io import load_split
    from structrepdiff.data.registry import get_dataset
    from structrepdiff.descriptor.config import get_preset
    from structrepdiff.geometry.crystals import Crystals
    from structrepdiff.geometry.neighbors import neighbor_list
    from structrepdiff.reconstruct.config import ReconstructConfig
    from structrepdiff.reconstruct.optimize import reconstruct_batch
    from structrepdiff.reconstruct.run import targets_from
    from structrepdiff.representation.decode import decode
    from structrepdiff.representation.encode import Representation, encode_structures

    torch.set_num_threads(1)
    name, _, rc = setting.partition("@")
    ead = get_preset(name)
    if rc:
        ead = dataclasses.replace(ead, cutoff=float(rc))
    info = get_dataset("mp_20")
    rep = Representation(ead, info.atomic_numbers, info.n_max)
    loaded = load_split("mp_20", "test")
    sizes = np.array([len(s) for s in loaded.structures])
    rng = np.random.default_rng(seed)
    idx = sorted(rng.choice(np.flatnonzero((sizes >= lo) & (sizes <= hi)), 8, replace=False))
    structs = [loaded.structures[k] for k in idx]
    R = encode_structures(structs, rep, batch_size=1)
    targets = [t for _, t in targets_from([loaded.ids[k] for k in idx], decode(R, rep))]
    pairs = len(neighbor_list(Crystals.from_structures(structs), ead.cutoff + 0.5))
    cfg = ReconstructConfig(trials=1, hops=1, steps=steps, threshold=0.0, patience=0)
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    reconstruct_batch(targets, ead, cfg)
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    return {"setting": setting, "cutoff": ead.cutoff, "gaussians": len(ead.rs) * len(ead.etas),
            "atoms": f"{lo}-{hi}", "batch_atoms": int(sizes[idx].sum()),
            "pairs_listed": pairs, "peak_extra_mb": round((peak - before) / 1024, 1),
            "ms_per_crystal_step": round(1000 * seconds / (8 * steps), 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/memory_growth.json"))
    a = ap.parse_args()
    if a.child:
        setting, lo, hi = a.child
        print(json.dumps(child(setting, int(lo), int(hi), a.steps, a.seed)))
        return
    rows = []
    for setting in a.settings:
        for lo, hi in BINS:
            cmd = [sys.executable, __file__, "--child", setting, str(lo), str(hi),
                   "--steps", str(a.steps), "--seed", str(a.seed)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    a.out.write_text(json.dumps({"rows": rows, "steps": a.steps, "seed": a.seed,
                                 "batch": 8, "dtype": "float32", "machine": "2 vCPU",
                                 "date": datetime.now(UTC).isoformat(timespec="seconds")},
                                indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
