"""Oracle diagnostics for reconstruction inside a space group (issue #26, deliverable 1).

Seeded test crystals (MP-20 stratified by size); each is reconstructed with its TRUE group and
Wyckoff pattern (pyxtal, tol 0.01 Å) by `reconstruct_symmetric`, and by today's unconstrained
default path (template starts of the training split, `TEMPLATE_BUDGET`), on the same targets:

- ``own``: the crystal's own R;
- ``noise0.01`` / ``noise0.03``: its R plus Gaussian noise of that σ on the structure part in
  the bundled model's scaled space (composition and N untouched);
- ``model``: the bundled model's R sampled for the crystal's composition (its formula as
  written, so N is the crystal's);
- ``model_sg``: the same from a group-conditioned model (``--model``, trained with
  ``--space-groups``) given the crystal's true group as well (deliverable 4).

``--model`` replaces the bundled model (then give ``--tag`` so its rows go to their own file).

Per crystal and method it records converged, loss, StructureMatcher match to the test crystal
(CDVAE's matcher and validity), the space group found at symprec 0.1 Å (P1 or not) and seconds,
one JSON line each in ``--out/<dataset>.jsonl`` (resumable: done rows are skipped), then
writes the per-row summary ``--out/<dataset>_summary.json``.

    python studies/symmetric_oracle.py --dataset mp_20 --num 200
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

import structrepdiff
from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.evaluate.reconstruction import reconstruction_match, reconstruction_matcher
from structrepdiff.evaluate.symmetry import space_group
from structrepdiff.pipeline.checkpoint import training_source
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET
from structrepdiff.reconstruct.optimize import Outcome
from structrepdiff.reconstruct.run import outcome_structure, reconstruct_targets, targets_from
from structrepdiff.reconstruct.symmetric import (
    SymmetricConfig,
    SymTarget,
    SymTemplates,
    reconstruct_symmetric,
)
from structrepdiff.reconstruct.templates import auto_templates
from structrepdiff.representation.condition import condition_mask
from structrepdiff.representation.decode import decode
from structrepdiff.symmetry.analyze import describe, describe_split

ROWS = ("own", "model", "noise0.03", "noise0.01")


def target_vectors(row: str, R: np.ndarray, formulas: list[str], model, seed: int,
                   groups: list[int] | None = None) -> np.ndarray:  # fmt: skip
    """(n, D) target vectors of ``row`` for the crystals with own vectors R (n, D);
    ``groups`` (n,) their true groups (0 unknown) for ``model_sg``."""
    if row == "own":
        return R
    if row.startswith("noise"):
        sc = model.loaded.scaler
        z = np.asarray(sc.transform(R))
        eps = np.random.default_rng(seed).standard_normal(z.shape) * ~condition_mask(
            model.loaded.rep)  # fmt: skip
        return sc.inverse(z + float(row[5:]) * eps)
    sg = groups if row == "model_sg" else None
    return model.sample(len(formulas), seed=seed, formula=formulas, space_group=sg)


def score(o, true, matcher) -> dict:
    """converged, loss, matched, rms, space group of one outcome (or (id, reason))."""
    if not isinstance(o, Outcome):
        return {"status": "failed", "reason": o[1], "matched": False, "p1": None}
    s = outcome_structure(o)
    m = reconstruction_match(s, true, matcher)
    sg = space_group(s)
    loss = getattr(o, "descriptor_loss", o.loss)  # the symmetric total adds the lattice term
    return {"status": "converged" if o.converged else "not_converged", "loss": loss,
            "matched": m.matched, "rms": m.rms, "sg": sg.value[0] if sg.value else None,
            "p1": (sg.value[0] == 1) if sg.value else None,
            "lattice_loss": getattr(o, "lattice_loss", None)}  # fmt: skip


def sym_templates(dataset: str, work: Path) -> SymTemplates:
    """The val split on Wyckoff parameters (cached in ``work``) as symmetric templates."""
    return SymTemplates(describe_split(dataset, "val", work))


def run_method(method: str, targets, sym, ead, templates, batch: int, cfg: SymmetricConfig,
               sym_tpl: SymTemplates | None = None):  # fmt: skip
    """Yield (outcome, seconds per crystal) in batches of ``batch``."""
    for k in range(0, len(targets), batch):
        part = targets[k : k + batch]
        t0 = time.perf_counter()
        if method == "symmetric":
            outs = reconstruct_symmetric([sym[t.id] for t in part], ead, cfg)
        elif method == "symmetric_tpl":
            sts = [sym[t.id] for t in part]
            outs = reconstruct_symmetric(sts, ead, cfg, [sym_tpl.starts(st) for st in sts])
        else:
            outs = [o for o, _ in reconstruct_targets(part, ead, TEMPLATE_BUDGET, templates,
                                                      batch_size=batch)]  # fmt: skip
        per = (time.perf_counter() - t0) / len(part)
        yield from ((o, per) for o in outs)


def summarize(path: Path) -> dict:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["row"], r["method"])].append(r)
    out = {}
    for (row, method), rs in sorted(groups.items()):
        n = len(rs)
        losses = [r["loss"] for r in rs if r.get("loss") is not None]
        out[f"{row}/{method}"] = {
            "n": n,
            "converged_pct": 100 * sum(r["status"] == "converged" for r in rs) / n,
            "match_pct": 100 * sum(r["matched"] for r in rs) / n,
            "p1_pct": 100 * sum(bool(r["p1"]) for r in rs) / n,
            "same_group_pct": 100 * sum(r.get("sg") == r["true_sg"] for r in rs) / n,
            "median_loss": float(np.median(losses)) if losses else None,
            "seconds_per_crystal": float(np.mean([r["seconds"] for r in rs])),
        }  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--methods", default="symmetric,free")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lattice-weight", type=float, default=SymmetricConfig.lattice_weight)
    ap.add_argument("--random-starts", type=int, default=SymmetricConfig.random_starts)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/symmetric_oracle"))
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundled model)")
    ap.add_argument("--tag", default="", help="suffix of the output files")
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    strat = a.dataset == "mp_20"
    ids, structures = seeded_subset(load_split(a.dataset, "test"), a.num, a.seed, strat)
    model = structrepdiff.load_model(a.model or a.dataset, templates=None)
    fs = structrepdiff.featurize(structures, dataset=a.dataset, ids=ids)
    if fs.rep != model.loaded.rep:
        raise SystemExit("the featurized test crystals and the bundled model differ in R")
    src = training_source(model.loaded.ckpt)
    templates, _ = auto_templates(src.get("dataset"), src.get("split"), None)
    true = dict(zip(ids, structures, strict=True))
    desc = {i: describe(s) for i, s in zip(ids, structures, strict=True)}
    formulas = [s.composition.formula.replace(" ", "") for s in structures]
    a.out.mkdir(parents=True, exist_ok=True)
    name = a.dataset + (f"_{a.tag}" if a.tag else "")
    path = a.out / f"{name}.jsonl"
    done = set()
    if path.exists():
        done = {
            (r["row"], r["method"], r["id"])
            for r in (json.loads(x) for x in path.read_text().splitlines() if x.strip())
        }
    matcher = reconstruction_matcher()
    cfg = SymmetricConfig(lattice_weight=a.lattice_weight, random_starts=a.random_starts)
    sym_tpl = (sym_templates(a.dataset, Path("runs/symmetric_oracle"))
               if "symmetric_tpl" in a.methods else None)  # fmt: skip
    with open(path, "a") as fh:
        for row in a.rows.split(","):
            groups = [0 if isinstance(desc[i], str) else desc[i].sg for i in ids]
            R = target_vectors(row, fs.R, formulas, model, a.seed, groups)
            tg = [t for _, t in targets_from(ids, decode(R, fs.rep)) if not isinstance(t, str)]
            sym = {t.id: SymTarget(t, desc[t.id].sg, desc[t.id].pattern) for t in tg
                   if not isinstance(desc[t.id], str)}  # fmt: skip
            for method in a.methods.split(","):
                todo = [t for t in tg if (row, method, t.id) not in done
                        and (method == "free" or t.id in sym)]  # fmt: skip
                for o, per in run_method(method, todo, sym, fs.rep.ead, templates, a.batch, cfg,
                                         sym_tpl):  # fmt: skip
                    rid = o.id if isinstance(o, Outcome) else o[0]
                    rec = {"row": row, "method": method, "id": rid, "n_atoms": len(true[rid]),
                           "true_sg": desc[rid].sg if rid in sym else None, "seconds": per,
                           **score(o, true[rid], matcher)}  # fmt: skip
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
                print(row, method, "done", flush=True)
    summary = summarize(path)
    (a.out / f"{name}_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
