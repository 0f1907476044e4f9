"""How cost grows (issue #16, deliverable 5, first part): reconstruction seconds per crystal
against atom count (seeded MP-20 test crystals in atom-count bins, one batch of ``--per-bin``
per bin, `TEMPLATE_BUDGET`, templates from val) and sampling seconds against the number of
vectors (the bundled MP-20 model, DDIM-100). One run, one thread; ``--out`` JSON.

    python benchmarks/cost_growth.py --per-bin 8 --samples 256 1024 4096
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import structrepdiff
from structrepdiff.data.io import load_split
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET
from structrepdiff.reconstruct.run import decodable_targets, reconstruct_targets
from structrepdiff.reconstruct.templates import auto_templates

BINS = ((2, 4), (5, 8), (9, 12), (13, 16), (17, 20))


def reconstruction_by_size(per_bin: int, seed: int) -> list[dict]:
    loaded = load_split("mp_20", "test")
    sizes = np.array([len(s) for s in loaded.structures])
    rng = np.random.default_rng(seed)
    templates, _ = auto_templates("mp_20")
    rows = []
    for lo, hi in BINS:
        idx = sorted(rng.choice(np.flatnonzero((sizes >= lo) & (sizes <= hi)), per_bin,
                                replace=False))  # fmt: skip
        fs = structrepdiff.featurize([loaded.structures[k] for k in idx], dataset="mp_20",
                                     ids=[loaded.ids[k] for k in idx])  # fmt: skip
        todo = decodable_targets(fs)
        t0 = time.perf_counter()
        out = list(reconstruct_targets(todo, fs.rep.ead, TEMPLATE_BUDGET, templates, per_bin))
        sec = time.perf_counter() - t0
        conv = sum(bool(getattr(o, "converged", False)) for o, _ in out)
        rows.append({"atoms": f"{lo}-{hi}", "mean_atoms": float(sizes[idx].mean()),
                     "crystals": per_bin, "seconds_per_crystal": round(sec / per_bin, 3),
                     "converged": conv})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def sampling_by_count(counts: list[int]) -> list[dict]:
    model = structrepdiff.load_model("mp_20", templates=None)
    rows = []
    for n in counts:
        t0 = time.perf_counter()
        model.sample(n, seed=0)
        sec = time.perf_counter() - t0
        rows.append({"vectors": n, "seconds": round(sec, 2),
                     "ms_per_vector": round(1e3 * sec / n, 2)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-bin", type=int, default=8)
    ap.add_argument("--samples", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cost_growth.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    result = {"reconstruction": reconstruction_by_size(a.per_bin, a.seed),
              "sampling": sampling_by_count(a.samples), "machine": "2 vCPU, 1 torch thread",
              "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
