"""Early stop by loss plateau (issue #16, deliverable 2): how many Adam steps would a plateau
rule save, and what would it cost in loss and converged crystals?

Records the loss of every crystal after every Adam step of the default reconstruction
(`TEMPLATE_BUDGET`, templates from the training split, batch 8), for generated vectors of the
bundled model and for seeded real test crystals, then replays rules offline: a hop stops once
its best loss has not fallen by a fraction ``tol`` within ``patience`` steps. Replaying is
exact for each crystal's own trajectory (a stopped crystal never influences the others beyond
float32 summation order). Writes ``--out/<dataset>.json``.

    python studies/loss_plateau.py --dataset perov_5 --generated 48 --real 48
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import structrepdiff
from structrepdiff.bundled import model_path
from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.features import load_features
from structrepdiff.pipeline.sample import SampleConfig, sample
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET
from structrepdiff.reconstruct.optimize import reconstruct_batch
from structrepdiff.reconstruct.run import decodable_targets, template_starts
from structrepdiff.reconstruct.templates import TemplateSet, auto_templates

PATIENCE = (20, 50, 75, 100, 150)
TOLS = (0.001, 0.01, 0.03)
FLOORS = (0.0, 0.003, 0.01, 0.03, 0.1)  # the rule applies only while the best loss is above this


def traces(targets, rep, templates, batch: int = 8) -> dict[tuple[int, int], list[float]]:
    """(target index, trial) -> the loss after each step of that trial's descent, with the
    library's own plateau stop off (the full budget)."""
    out: dict[tuple[int, int], list[float]] = defaultdict(list)
    cfg = dataclasses.replace(TEMPLATE_BUDGET, patience=0)  # every step: the rules are replayed
    for k in range(0, len(targets), batch):
        part = targets[k : k + batch]
        starts = template_starts(part, templates, rep.ead, cfg)

        def hook(trial, hop, t, ids, loss, k=k):
            for i, v in zip(ids.tolist(), loss.tolist(), strict=True):
                out[(k + i, trial)].append(v)

        reconstruct_batch(part, rep.ead, cfg, starts, on_step=hook)
    return out


def replay(tr: dict, n: int, patience: int, tol: float, threshold: float,
           floor: float = 0.0) -> dict:  # fmt: skip
    """Final best loss and steps per crystal under the rule (patience 0: no rule); a crystal
    whose best loss is at or below ``floor`` is never stopped by the rule."""
    best, steps = np.full(n, np.inf), np.zeros(n, int)
    for i in range(n):
        for trial in range(TEMPLATE_BUDGET.trials):
            if best[i] < threshold or (i, trial) not in tr:
                break
            m = np.minimum.accumulate(np.asarray(tr[(i, trial)]))
            stop = len(m)
            if patience:
                ref, ref_t = m[0], 0
                for t in range(1, len(m)):
                    if m[t] < ref * (1 - tol):
                        ref, ref_t = m[t], t
                    elif t - ref_t >= patience and m[t] > floor:
                        stop = t + 1
                        break
            steps[i] += stop
            best[i] = min(best[i], m[stop - 1])
    return {"best": best, "steps": steps}


def summarise(tr: dict, n: int) -> list[dict]:
    thr = TEMPLATE_BUDGET.threshold
    full = replay(tr, n, 0, 0.0, thr)
    rows = [{"patience": 0, "tol": 0, "steps": int(full["steps"].sum()),
             "converged": int((full["best"] < thr).sum()), "median_loss_ratio": 1.0,
             "worst_loss_ratio": 1.0}]  # fmt: skip
    for p, tol, floor in itertools.product(PATIENCE, TOLS, FLOORS):
        r = replay(tr, n, p, tol, thr, floor)
        ratio = r["best"] / full["best"]
        rows.append({"patience": p, "tol": tol, "floor": floor,
                         "steps": int(r["steps"].sum()),
                         "steps_fraction": round(r["steps"].sum() / full["steps"].sum(), 3),
                         "converged": int((r["best"] < thr).sum()),
                         "median_loss_ratio": round(float(np.median(ratio)), 4),
                         "p90_loss_ratio": round(float(np.quantile(ratio, 0.9)), 4),
                         "worst_loss_ratio": round(float(ratio.max()), 4)})  # fmt: skip
    return rows


def generated_targets(dataset: str, n: int, work: Path):
    path = work / f"{dataset}_generated_{n}.npz"
    if not path.exists():
        sample(SampleConfig(model=model_path(dataset), out=path, num=n,
                            progress=False, force=True))  # fmt: skip
    fs = load_features(path)
    return decodable_targets(fs), fs.rep


def real_targets(dataset: str, n: int, seed: int):
    ids, structures = seeded_subset(load_split(dataset, "test"), n, seed)
    fs = structrepdiff.featurize(structures, dataset=dataset, ids=ids)
    return decodable_targets(fs), fs.rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="perov_5")
    ap.add_argument("--generated", type=int, default=48)
    ap.add_argument("--real", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("runs/loss_plateau"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/loss_plateau"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.work.mkdir(parents=True, exist_ok=True)
    templates = TemplateSet.load(auto_templates(a.dataset)[0])
    result = {"dataset": a.dataset, "config": "TEMPLATE_BUDGET, templates from val, batch 8",
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "seed": a.seed}  # fmt: skip
    for kind, (targets, rep) in (
        ("generated (bundled model, DDIM-100)", generated_targets(a.dataset, a.generated, a.work)),
        ("real test crystals (seeded)", real_targets(a.dataset, a.real, a.seed)),
    ):
        name = a.work / f"{a.dataset}_{kind.split()[0]}_traces.json"
        if name.exists():  # the recorded traces are reused (replaying is cheap)
            tr = {tuple(map(int, k.split(","))): v for k, v in json.loads(name.read_text()).items()}
        else:
            tr = traces(targets, rep, templates)
            name.write_text(json.dumps({f"{i},{j}": v for (i, j), v in tr.items()}))
        full = replay(tr, len(targets), 0, 0.0, TEMPLATE_BUDGET.threshold)["best"]
        result[kind] = {
            "n": len(targets),
            "rules": summarise(tr, len(targets)),
            "final_loss_quartiles": np.quantile(full, [0.25, 0.5, 0.75]).tolist(),
        }
        print(kind, json.dumps(result[kind]["rules"][:1]), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.dataset}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
