"""Where reconstruction time goes, by phase (issue #16, deliverable 1): template ranking
(candidate starts and their losses), neighbour-list rebuilds, the loss forward, its backward,
and the rest of the descent (Adam update, bookkeeping, Python), measured with wall-clock
timers around those functions on the default path (`TEMPLATE_BUDGET`, templates from val,
batch 8, the plateau stop as configured) for ``--num`` vectors of the bundled model
(``--kind generated``) or seeded test crystals (``--kind real``). One thread. Appends one JSON
line per run to ``--out``.

    python benchmarks/reconstruction_phases.py --dataset mp_20 --kind generated --num 48
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import torch

import structrepdiff
import structrepdiff.reconstruct.optimize as opt
from structrepdiff.bundled import model_path
from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.features import load_features
from structrepdiff.pipeline.sample import SampleConfig, sample
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET
from structrepdiff.reconstruct.run import decodable_targets, template_starts
from structrepdiff.reconstruct.templates import TemplateSet, auto_templates

SECONDS: dict[str, float] = defaultdict(float)


def timer(name: str, fn):
    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[name] += time.perf_counter() - t0

    return wrapped


def vectors(dataset: str, kind: str, num: int, work: Path):
    if kind == "generated":
        path = work / f"{dataset}_{num}.npz"
        if not path.exists():
            sample(SampleConfig(model=model_path(dataset), out=path, num=num,
                                progress=False, force=True))  # fmt: skip
        fs = load_features(path)
    else:
        ids, structures = seeded_subset(load_split(dataset, "test"), num, 0)
        fs = structrepdiff.featurize(structures, dataset=dataset, ids=ids)
    return decodable_targets(fs), fs.rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--kind", choices=["generated", "real"], default="generated")
    ap.add_argument("--num", type=int, default=48)
    ap.add_argument("--work", type=Path, default=Path("runs/reconstruction_phases"))
    ap.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/reconstruction_phases.jsonl")
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.work.mkdir(parents=True, exist_ok=True)
    targets, rep = vectors(a.dataset, a.kind, a.num, a.work)
    templates = TemplateSet.load(auto_templates(a.dataset)[0])
    opt.neighbor_list = timer("neighbour_list", opt.neighbor_list)
    opt.descriptor_loss = timer("loss_forward", opt.descriptor_loss)
    torch.autograd.grad = timer("loss_backward", torch.autograd.grad)
    ranking = descent = 0.0
    steps = 0
    for k in range(0, len(targets), 8):
        part = targets[k : k + 8]
        t0, snapshot = time.perf_counter(), dict(SECONDS)
        starts = template_starts(part, templates, rep.ead, TEMPLATE_BUDGET)
        ranking += time.perf_counter() - t0
        SECONDS.clear()  # the ranking's own loss calls count as ranking, not as descent
        SECONDS.update(snapshot)
        t0 = time.perf_counter()
        steps += sum(o.steps for o in opt.reconstruct_batch(part, rep.ead, TEMPLATE_BUDGET, starts))
        descent += time.perf_counter() - t0
    n = len(targets)
    rest = descent - sum(SECONDS.values())
    row = {"dataset": a.dataset, "kind": a.kind, "crystals": n, "mean_steps": steps / n,
           "seconds_per_crystal": {"template_ranking": round(ranking / n, 4),
                                   **{k: round(v / n, 4) for k, v in SECONDS.items()},
                                   "adam_and_rest": round(rest / n, 4)},
           "config": "TEMPLATE_BUDGET (plateau stop as configured), templates from val, batch 8",
           "machine": "2 vCPU, 1 thread",
           "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    print(json.dumps(row), flush=True)
    with open(a.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
