"""Crystal-structure prediction (issue #12, deliverable 5; DiffCSP's protocol): each test
crystal's exact composition → k structures from the conditional model → reconstruct →
``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)`` against that test crystal.

A test crystal is matched when any of its k predictions matches; an invalid prediction
(structure or SMACT composition validity, as CDVAE's RecEval) or a rejected / failed
reconstruction is a miss. Match % = matched / crystals; RMSE = mean over matched crystals of
the smallest normalised RMS displacement among its matching predictions.

Crystals: ``--num`` seeded test crystals (0: the whole split); with ``--stratify`` (default
for mp_20) the pick keeps the split's distribution of atom counts. ``--templates val`` starts
reconstruction from val crystals of the same N (templates are training crystals: their own
row); ``none`` starts from random positions in the sampled lattice. Results:
``--out/<dataset>_k<k>_<templates>[_<tag>].json`` plus a per-crystal CSV (id, N, matched, rms,
reason). Resumable: the vectors are drawn once and reconstruction resumes from ``--work``.

    python benchmarks/csp.py --dataset perov_5 --model perov_5 --num 300
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure

from structrepdiff.data.io import load_split
from structrepdiff.evaluate.reconstruction import reconstruction_match, reconstruction_matcher
from structrepdiff.features import FeatureSet, atomic_write, load_features, save_features
from structrepdiff.pipeline.anchor import anchor_vectors, retrieve
from structrepdiff.pipeline.checkpoint import LoadedModel
from structrepdiff.pipeline.sample import (
    parse_space_group,
    refine_vectors,
    sample_vectors,
    uses_groups,
)
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction
from structrepdiff.reconstruct.symmetric import SymmetricConfig, SymTemplates
from structrepdiff.reconstruct.templates import cached_templates_path
from structrepdiff.representation.condition import condition_mask
from structrepdiff.symmetry.analyze import cached_description, cached_description_path
from structrepdiff.symmetry.assign import choices_to_json, no_group_reason, numbers_of_rows


def pick_crystals(n_atoms: np.ndarray, num: int, seed: int, stratify: bool) -> np.ndarray:
    """Sorted indices of ``num`` crystals (all if num is 0 or ≥ len), seeded; ``stratify``
    keeps the share of each atom count N (largest remainder)."""
    rng = np.random.default_rng(seed)
    if num <= 0 or num >= len(n_atoms):
        return np.arange(len(n_atoms))
    if not stratify:
        return np.sort(rng.choice(len(n_atoms), num, replace=False))
    sizes, inverse = np.unique(n_atoms, return_inverse=True)
    share = np.bincount(inverse) * num / len(n_atoms)
    take = np.floor(share).astype(int)
    take[np.argsort(take - share)[: num - take.sum()]] += 1
    picks = [rng.choice(np.flatnonzero(inverse == g), take[g], replace=False)
             for g in range(len(sizes))]  # fmt: skip
    return np.sort(np.concatenate(picks))


def finished(work: Path, wanted: set[str], k: int) -> tuple[set[str], dict | None]:
    """The wanted test ids whose k predictions are all reconstructed, and (when some are not)
    a record of the partial run: the prefix of a shuffled vector file is a seeded random
    subset, of a sorted (older) one the first crystals in file order."""
    path = work / "summary.csv"
    with open(path, newline="") as fh:
        done = {r["id"] for r in csv.DictReader(fh)} if path.exists() else set()
    keep = {t for t in wanted if all(f"{t}#{j}" in done for j in range(k))}
    if keep == wanted:
        return keep, None
    meta = load_features(work / "vectors.npz").source
    return keep, {"n_requested": len(wanted), "n_scored": len(keep),
                  "order": meta.get("order", "sorted")}  # fmt: skip


def score(work: Path, truth: dict[str, Structure], k: int) -> tuple[dict, list[dict]]:
    with open(work / "summary.csv", newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    matcher, per = reconstruction_matcher(), []
    for tid, true in truth.items():
        best, reasons = None, defaultdict(int)
        for j in range(k):
            r = rows.get(f"{tid}#{j}")
            if r is None or not r.get("cif"):
                reasons[f"no crystal ({r['status'] if r else 'missing'})"] += 1
                continue
            try:
                pred = Structure.from_file(work / r["cif"])
            except ValueError as exc:  # e.g. coincident atoms pymatgen's CIF parser refuses
                reasons[f"unreadable CIF ({' '.join(str(exc).split())[:60]})"] += 1
                continue
            m = reconstruction_match(pred, true, matcher)
            if m.matched:
                best = m.rms if best is None else min(best, m.rms)
            else:
                reasons[m.reason.split(":")[0]] += 1
        per.append({"id": tid, "n_atoms": len(true), "matched": best is not None, "rms": best,
                    "reason": "" if best is not None else "; ".join(
                        f"{n}× {why}" for why, n in sorted(reasons.items()))})  # fmt: skip
    hit = [p["rms"] for p in per if p["matched"]]
    return {"n_crystals": len(per), "k": k, "match_pct": 100.0 * len(hit) / len(per),
            "rmse": float(np.mean(hit)) if hit else None}, per  # fmt: skip


def crystal_choices(prior, comps: list, k: int, tpl=None) -> list:
    """Per row (k consecutive rows per test crystal): the prior's j-th most likely (group,
    pattern) for the crystal's j-th prediction, each crystal ranked on its own (two test
    crystals of one composition both get the top pair); with ``tpl`` the first prediction
    takes the nearest val crystal's pair of the same anonymous formula instead."""
    out = []
    for r, numbers in enumerate(comps):
        j = r % k
        w = retrieve(tpl, numbers) if tpl is not None and j == 0 else None
        dist = prior.distribution(numbers)
        if w is not None:
            out.append((w.sg, w.pattern))
        elif not dist:
            out.append(no_group_reason(numbers))
        else:
            out.append((dist[j % len(dist)][1], dist[j % len(dist)][2]))
    return out


def symmetric_vectors(model, known, a: argparse.Namespace) -> tuple[np.ndarray, list]:
    """(R, choices) for the rows of ``known``: groups per `crystal_choices`, R sampled given
    them; with ``--anchor-t0`` the rows whose pair has a val crystal start from that crystal,
    substituted and noised to t₀ (SDEdit), instead of from noise."""
    comps = numbers_of_rows(model.rep, known[1])
    tpl = None
    if a.pairs == "template" or a.anchor_t0 > 0:
        tpl = SymTemplates(cached_description(a.dataset, "val", a.data_dir))
    choices = crystal_choices(model.prior, comps, a.k, tpl if a.pairs == "template" else None)
    groups = np.array([0 if isinstance(c, str) else c[0] for c in choices])
    g = groups if model.group_conditioned else None
    R = sample_vectors(model, len(comps), "ddim", 100, a.seed, progress=not a.no_progress,
                       known=known, guidance=a.guidance, groups=g)  # fmt: skip
    if a.anchor_t0 > 0:
        R0, found = anchor_vectors(model.rep, tpl, comps, choices)
        f = np.flatnonzero(found)
        if len(f):
            R[f] = refine_vectors(model, R0[f], int(a.anchor_t0 * model.diffusion.T),
                                  seed=a.seed, guidance=a.guidance,
                                  groups=None if g is None else g[f])  # fmt: skip
    return R, choices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", type=Path, required=True, help="conditional checkpoint")
    ap.add_argument("--num", type=int, default=1000, help="test crystals (0: all)")
    ap.add_argument("--k", type=int, default=1, help="predictions per crystal")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--templates", choices=["val", "none"], default="val")
    ap.add_argument("--space-group", default="auto",
                    help="auto: inside the prior's ranked groups when the model bundles a "
                    "prior (the k-th prediction in the k-th most likely group and pattern); "
                    "off: today's unconstrained path")  # fmt: skip
    ap.add_argument(
        "--stratify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the split's atom-count distribution (default: on for mp_20)",
    )
    ap.add_argument(
        "--pairs",
        choices=["prior", "template"],
        default="prior",
        help="symmetric path: the first prediction's (group, pattern) from the "
        "prior or from the nearest val crystal of the same anonymous formula",
    )
    ap.add_argument(
        "--anchor-t0",
        type=float,
        default=0.0,
        help="symmetric path: start the diffusion from the substituted val "
        "crystal of the chosen pair, noised to this fraction of T (SDEdit)",
    )
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--hops", type=int, default=1)
    ap.add_argument("--random-starts", type=int, default=SymmetricConfig.random_starts,
                    help="random starts per crystal inside its group (symmetric path)")  # fmt: skip
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--data-dir")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--score-only",
        action="store_true",
        help="score the crystals reconstructed so far (labelled partial)",
    )
    ap.add_argument("--features", type=Path, default=Path("runs/features"))
    ap.add_argument("--work", type=Path, default=Path("runs/csp"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/csp"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model = LoadedModel.load(a.model)
    test = load_features(a.features / f"{a.dataset}_test_small.npz")
    if test.rep != model.rep or not model.conditional:
        raise SystemExit("need a conditional model of the feature files' representation")
    n_atoms = np.rint(test.block("n_atoms")[:, 0] * test.rep.n_max).astype(int)
    stratify = a.dataset == "mp_20" if a.stratify is None else a.stratify
    idx = pick_crystals(n_atoms, a.num, a.seed, stratify)
    name = f"{a.dataset}_k{a.k}_{a.templates}" + (f"_{a.tag}" if a.tag else "")
    work = a.work / name
    work.mkdir(parents=True, exist_ok=True)
    feats, t0 = work / "vectors.npz", time.perf_counter()
    symmetric = uses_groups(model, parse_space_group(a.space_group))
    if not feats.exists():  # in a seeded random order: any finished prefix is a random subset
        order = np.random.default_rng(a.seed + 1).permutation(idx)
        rows = np.repeat(order, a.k)
        known = (condition_mask(test.rep), test.R[rows])
        src = {"csp": name, "order": "shuffled"}
        if symmetric:
            R, choices = symmetric_vectors(model, known, a)
            src["symmetry"] = choices_to_json(choices)
        else:
            R = sample_vectors(model, len(rows), "ddim", 100, a.seed,
                               progress=not a.no_progress, known=known,
                               guidance=a.guidance)  # fmt: skip
        ids = [f"{test.ids[i]}#{j}" for i in order for j in range(a.k)]
        save_features(FeatureSet(R, ids, test.rep, [], src), feats)
    t_sample = time.perf_counter() - t0
    tpl = None
    if a.templates == "val":
        tpl = (cached_description_path(a.dataset, "val", a.data_dir) if symmetric
               else cached_templates_path(a.dataset, "val", a.data_dir))  # fmt: skip
    kind = SymmetricConfig if symmetric else ReconstructConfig
    extra = {"random_starts": a.random_starts} if symmetric else {}
    rcfg = kind(trials=a.trials, hops=a.hops, steps=a.steps, seed=a.seed, **extra)
    t1 = time.perf_counter()
    if not a.score_only:
        run_reconstruction(ReconstructJob(feats, work, rcfg, None, 8, False, not a.no_progress,
                                          tpl))  # fmt: skip
    t_rec = time.perf_counter() - t1
    keep, partial = finished(work, {test.ids[i] for i in idx}, a.k)
    split = load_split(a.dataset, "test", a.data_dir)
    truth = {i: s for i, s in zip(split.ids, split.structures, strict=True) if i in keep}
    summary, per = score(work, truth, a.k)
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / f"{name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(per[0]))
        w.writeheader()
        w.writerows(per)
    result = {**summary, "dataset": a.dataset, "templates": a.templates,
              "space_group": "prior-ranked groups" if symmetric else "off",
              "pairs": a.pairs, "anchor_t0": a.anchor_t0,
              "guidance": a.guidance, "stratified": stratify, "model": str(a.model),
              "partial": partial,
              "split": "test compositions; model and templates from val",
              "reconstruction": rcfg.to_dict(), "seed": a.seed,
              "seconds": {"sampling": t_sample, "reconstruction": t_rec,
                          "scoring": time.perf_counter() - t1 - t_rec},
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": "2 vCPU, 1 torch thread"}  # fmt: skip
    atomic_write(a.out / f"{name}.json", lambda p: p.write_text(json.dumps(result, indent=1)),
                 force=True)  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "reconstruction"}), flush=True)


if __name__ == "__main__":
    main()
