"""The batched relaxation on a GPU (issue 28, deliverable 5): one prepared script for a lent GPU.

Relaxes the same ``--num`` crystals (seeded from ``--pred``, e.g. a `generate` folder or a
split CSV) with CHGNet on ``--device`` at each ``--batch-sizes`` (crystals in flight, the whole
batch per forward pass), after a warm-up, and reports per batch size: wall seconds, crystals
per second, mean FIRE steps, the share of time in CHGNet's CPU graph construction, and the
peak GPU memory. Results go to ``--out`` (JSON) after every batch size.

    python benchmarks/relax_gpu.py --pred ../shared/data/mp_20/test.csv.gz --num 2000 \
        --batch-sizes 64 256 1024 --device cuda
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from structrepdiff.data.predictions import load_predictions
from structrepdiff.relax.batched import relax_batched
from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.potential import CHGNetBatch, load_calculator


class _Timed(CHGNetBatch):
    """CHGNetBatch that adds up the seconds spent building graphs on the CPU."""

    graph_seconds = 0.0

    def graph(self, structure):
        t0 = time.perf_counter()
        g = super().graph(structure)
        self.graph_seconds += time.perf_counter() - t0
        return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pred", type=Path, required=True)
    ap.add_argument("--num", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/relax_gpu.json"))
    a = ap.parse_args()
    preds = [p for p in load_predictions(a.pred) if p.structure is not None]
    pick = np.random.default_rng(a.seed).choice(len(preds), min(a.num, len(preds)),
                                                replace=False)  # fmt: skip
    items = [(preds[k].id, preds[k].structure) for k in sorted(pick)]
    model = load_calculator("chgnet", a.device).model
    res = {"pred": str(a.pred), "num": len(items), "seed": a.seed, "device": a.device,
           "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else None,
           "date": datetime.now(UTC).isoformat(timespec="seconds"), "rows": {}}  # fmt: skip
    for b in a.batch_sizes:
        pot = _Timed(model, b)
        cfg = RelaxConfig(device=a.device, batch_size=b)
        list(relax_batched(items[: min(b, 32)], pot, RelaxConfig(device=a.device,
                                                                  max_steps=3)))  # warm-up
        pot.graph_seconds = 0.0
        if a.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = list(relax_batched(items, pot, cfg))
        wall = time.perf_counter() - t0
        steps = [r.steps for _, r, _ in out]
        res["rows"][str(b)] = {
            "seconds": wall, "crystals_per_second": len(items) / wall,
            "mean_steps": float(np.mean(steps)), "graph_share": pot.graph_seconds / wall,
            "statuses": {s: sum(r.status == s for _, r, _ in out)
                         for s in sorted({r.status for _, r, _ in out})},
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30
            if a.device.startswith("cuda") else None,
            "predicted_10k_minutes": 10000 / (len(items) / wall) / 60}  # fmt: skip
        print(b, json.dumps(res["rows"][str(b)]), flush=True)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
