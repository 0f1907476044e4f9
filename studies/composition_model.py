"""Composition model benchmark (issue #12, deliverable 2): p(composition, N) on 10,000 samples.

For each dataset: train the autoregressive composition model on the val split's compositions
(the public data has no train split), sample ``--num`` compositions (seeded) and score them
against the test split (SMACT validity, #elements histogram and EMD, element-frequency JS
divergence, uniqueness, formula novelty against val). Baseline and floors in the same run:
empirical resampling of val compositions, the whole val split, and the test split itself
(validity, uniqueness and novelty of real held-out compositions against val).

    python studies/composition_model.py --datasets perov_5 mp_20 carbon_24 --num 10000

Writes ``--out/<dataset>.json`` (one record per row) and prints a markdown table; trained
models are cached in ``--work/<dataset>_composition.pt`` (reused unless ``--retrain``).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Element

from structrepdiff.composition.model import CompositionModel
from structrepdiff.composition.train import (
    CompositionTrainConfig,
    counts_from_features,
    load_composition_model,
    save_composition_model,
    train_composition,
)
from structrepdiff.data.atomic import atomic_write
from structrepdiff.evaluate.composition_stats import composition_statistics
from structrepdiff.features import load_features


def as_dicts(counts: np.ndarray, atomic_numbers) -> list[dict[str, int]]:
    sym = [Element.from_Z(int(z)).symbol for z in atomic_numbers]
    return [{sym[j]: int(r[j]) for j in np.flatnonzero(r)} for r in counts]


def model_for(dataset: str, a: argparse.Namespace) -> tuple[CompositionModel, dict]:
    path = a.work / f"{dataset}_composition.pt"
    if path.exists() and not a.retrain:
        return load_composition_model(path)
    fs = load_features(a.features / f"{dataset}_val_small.npz")
    cfg = CompositionTrainConfig(steps=a.steps, seed=a.seed, hidden=a.hidden,
                                 dropout=a.dropout, lr=a.lr, weight_decay=a.weight_decay,
                                 eval_every=a.eval_every)  # fmt: skip
    t0 = time.perf_counter()
    model, record = train_composition(counts_from_features(fs), fs.rep.atomic_numbers,
                                      fs.rep.n_max, cfg, progress=True)  # fmt: skip
    record["seconds"] = time.perf_counter() - t0
    a.work.mkdir(parents=True, exist_ok=True)
    save_composition_model(model, record, path, force=True)
    return model, record


def run(dataset: str, a: argparse.Namespace) -> list[dict]:
    val = load_features(a.features / f"{dataset}_val_small.npz")
    test = load_features(a.features / f"{dataset}_test_small.npz")
    z = val.rep.atomic_numbers
    cv, ct = as_dicts(counts_from_features(val), z), as_dicts(counts_from_features(test), z)
    model, record = model_for(dataset, a)
    rows = []

    def add(name: str, comps: list, seconds: float | None = None) -> None:
        s = composition_statistics(comps, ct, cv)
        rows.append({"dataset": dataset, "row": name, **s, "sample_seconds": seconds})
        print(f"{dataset} {name}: valid {s['smact_valid_pct']:.1f} EMD {s['emd_n_elements']:.3f}"
              f" JS {s['element_js_bits']:.4f} unique {s['unique_pct']:.1f}"
              f" novel {s['novel_pct']:.1f}")  # fmt: skip

    for temp in a.temperatures:
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(a.seed)
        counts = np.concatenate([model.sample(min(2000, a.num - k), g, temperature=temp)
                                 for k in range(0, a.num, 2000)])  # fmt: skip
        add(f"AR model, T={temp:g}", as_dicts(counts, z), time.perf_counter() - t0)
    rng = np.random.default_rng(a.seed)
    add("empirical resampling of val", [cv[i] for i in rng.integers(0, len(cv), a.num)])
    add("val split (all, training data)", cv)
    add("test split (floor: real held-out)", ct)
    rows[0]["model_train"] = record
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["perov_5", "mp_20", "carbon_24"])
    ap.add_argument("--num", type=int, default=10_000)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--features", type=Path, default=Path("runs/features"))
    ap.add_argument("--work", type=Path, default=Path("runs/composition"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/composition_model"))
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    for ds in a.datasets:
        rows = run(ds, a)
        meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "num": a.num,
                "seed": a.seed, "train_split": "val", "reference_split": "test",
                "machine": "2 vCPU, 1 torch thread"}  # fmt: skip
        path = a.out / f"{ds}{a.tag}.json"
        atomic_write(path, lambda p, r=rows, m=meta: p.write_text(json.dumps(
            {"meta": m, "rows": r}, indent=1)), force=True)  # fmt: skip


if __name__ == "__main__":
    main()
