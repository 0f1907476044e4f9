"""Does CHGNet's batched graph path pay on a CPU? (issue 28, measured before building.)

One force-and-stress evaluation of the same MP-20 test crystals, one crystal per call
(`CHGNet.predict_structure(s)`, what ASE's calculator does per FIRE step) against the whole list
per call with ``batch_size`` B, and against `relax.potential.efs` (one backward pass without a
graph of its own, what the batched relaxation calls) on the same graphs in chunks of B
(``efs_<B>``; graph building excluded from both of these). Warm-up first; the order is
alternated over ``--repeats``. Writes ``--out/chgnet_batching.json``.

    python benchmarks/chgnet_batching.py --num 32 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from structrepdiff.data.io import load_split, seeded_subset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 32])
    ap.add_argument("--efs-chunks", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/relax_batching"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    from chgnet.model import CHGNet

    _, structures = seeded_subset(load_split("mp_20", "test", a.data_dir), a.num, a.seed)
    model = CHGNet.load(verbose=False)
    model.predict_structure(structures[:2], batch_size=2, task="efs")  # warm-up
    from structrepdiff.relax.potential import efs

    graphs = [model.graph_converter(s) for s in structures]
    times: dict[str, list[float]] = {"one_by_one": []} | {f"batch_{b}": [] for b in a.batch_sizes}
    times |= {f"graphs_batch_{b}": [] for b in a.batch_sizes}
    times |= {f"efs_{b}": [] for b in a.efs_chunks}
    for rep in range(a.repeats):
        order = list(times) if rep % 2 == 0 else list(reversed(times))
        for key in order:
            t0 = time.perf_counter()
            if key == "one_by_one":
                for s in structures:
                    model.predict_structure(s, task="efs")
            elif key.startswith("efs_"):
                b = int(key.split("_")[1])
                for k in range(0, len(graphs), b):
                    efs(model, graphs[k : k + b])
            elif key.startswith("graphs_batch_"):
                model.predict_graph(graphs, batch_size=int(key.split("_")[2]), task="efs")
            else:
                model.predict_structure(structures, batch_size=int(key.split("_")[1]), task="efs")
            times[key].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    result = {"n_crystals": len(structures), "n_atoms": sum(len(s) for s in structures),
              "median_seconds": med,
              "ratio_to_one_by_one": {k: v / med["one_by_one"] for k, v in med.items()},
              "seconds": times, "seed": a.seed, "split": "mp_20 test (seeded)",
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": "2 vCPU, 1 torch thread, other jobs running"}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "chgnet_batching.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("n_crystals", "n_atoms", "median_seconds",
                                             "ratio_to_one_by_one")}))  # fmt: skip


if __name__ == "__main__":
    main()
