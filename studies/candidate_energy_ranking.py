"""Choosing among symmetric candidates by CHGNet energy (issue #26, deliverable 6; a row that
uses a potential).

Reads the candidates of `studies/symmetric_candidates.py` (the prior's k most likely (group,
pattern) pairs per composition, each reconstructed; CIFs in ``runs/symmetric_candidates/<ds>_
<split>/<id>_<j>.cif``, per-candidate match to the test crystal in ``benchmarks/results/
symmetric_candidates/<ds>_<split>.jsonl``). Each candidate is relaxed briefly with CHGNet with
its space group kept (``--steps`` FIRE steps, all under FixSymmetry at 0.01 Å), and for every
k the pick is the candidate of lowest energy per atom. The match is the candidate's own match
(as reconstructed, before the short relaxation), so the rows compare with the loss-based
chooser of the same run. One JSON line per crystal in ``--out/<ds>_<split>.jsonl``
(resumable), then the summary per k.

    python studies/candidate_energy_ranking.py --dataset perov_5 --split val
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def summarize(rows: list[dict], ks: list[int]) -> dict:
    out = {}
    for k in ks:
        hit_e, hit_l, hit_1, hit_any = [], [], [], []
        for r in rows:
            c = r["candidates"][:k]
            es = [x["energy"] if x["energy"] is not None else np.inf for x in c]
            if not c:
                hit_e.append(False), hit_l.append(False), hit_1.append(False)
                hit_any.append(False)
                continue
            hit_e.append(c[int(np.argmin(es))]["matched"])
            hit_l.append(c[int(np.argmin([x["loss"] for x in c]))]["matched"])
            hit_1.append(c[0]["matched"])
            hit_any.append(any(x["matched"] for x in c))
        out[f"k={k}"] = {"n": len(rows), "energy_pick_match_pct": 100 * np.mean(hit_e),
                         "loss_pick_match_pct": 100 * np.mean(hit_l),
                         "prior_top1_match_pct": 100 * np.mean(hit_1),
                         "any_match_pct": 100 * np.mean(hit_any)}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--k", default="2,3,5")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/candidate_energy"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from pymatgen.core import Structure

    from structrepdiff.relax.config import RelaxConfig
    from structrepdiff.relax.core import relax_structure
    from structrepdiff.relax.potential import load_calculator

    name = f"{a.dataset}_{a.split}"
    src = Path(f"benchmarks/results/symmetric_candidates/{name}.jsonl")
    cands = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    cif_dir = Path("runs/symmetric_candidates") / name
    ks = [int(x) for x in a.k.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{name}.jsonl"
    done = {json.loads(x)["id"] for x in path.read_text().splitlines()} if path.exists() else set()
    calc = load_calculator("chgnet")
    cfg = RelaxConfig(max_steps=a.steps, symmetric_steps=a.steps)
    with open(path, "a") as fh:
        for r in cands:
            if r["id"] in done:
                continue
            t0, out = time.perf_counter(), []
            for j, c in enumerate(r["candidates"][: max(ks)]):
                res = relax_structure(Structure.from_file(cif_dir / f"{r['id']}_{j}.cif"), calc,
                                      cfg)  # fmt: skip
                out.append({"sg": c["sg"], "loss": c["loss"], "matched": c["matched"],
                            "energy": res.energy_after, "status": res.status})  # fmt: skip
            rec = {"id": r["id"], "true_sg": r["true_sg"], "candidates": out,
                   "seconds": time.perf_counter() - t0}  # fmt: skip
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    summary = {"steps": a.steps, "fix_symmetry": True, **summarize(rows, ks)}
    (a.out / f"{name}_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
