"""Structure given composition (issue #12, deliverable 3): on the same seeded test
compositions, which generator gives structure vectors a crystal realises?

Rows (each ``--num`` test crystals, seeded; ids are the test ids, so ``match_clean_pct`` is the
StructureMatcher match to that test crystal, a k = 1 CSP preview):
- ``replace``: the unconditional model (``--uncond``, default: the dataset's bundled model) with
  composition and N fixed by replacement in x̂₀ (today's conditioning).
- ``cfg<s>``: the conditional model (``--model``) with classifier-free guidance scale s
  (0: its unconditional branch with the composition pasted in; 1: plain conditional).
- ``proj<r>t<t0>``: projection in the loop, round r: the crystals of round r − 1 (round 0 is
  ``cfg1``) are re-encoded, their structure part noised to step t0 and denoised by the
  conditional model given their composition (`refine_vectors`), and reconstructed from the
  previous crystal as the start (warm start: a template set of round r − 1's crystals).
- ``pca<k>``: the floor test of a whitened PCA latent: the test vector's scaled structure
  block projected onto the top k principal components of the scaled val structure blocks and
  back (no model) — what any k-dimensional latent loses at best.

Reconstruction and scoring as `generation_diagnostics.py` (val templates, 4 × 1 × 300).
Results go to ``--out/<dataset>[_<tag>].json`` after each row (resumable).

    python studies/conditional_structure.py --dataset perov_5 \
        --model runs/cond/perov_5_cfg/checkpoint.pt
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure

from structrepdiff.bundled import model_path
from structrepdiff.data.io import load_split
from structrepdiff.evaluate.run import score_run_folder
from structrepdiff.features import FeatureSet, atomic_write, load_features, save_features
from structrepdiff.pipeline.checkpoint import LoadedModel
from structrepdiff.pipeline.sample import refine_vectors, sample_vectors
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction
from structrepdiff.reconstruct.templates import TemplateSet, cached_templates_path
from structrepdiff.representation.condition import condition_mask
from structrepdiff.representation.encode import encode_structures


def pca_row(val: FeatureSet, test_R: np.ndarray, model: LoadedModel, k: int) -> np.ndarray:
    """Test rows with the scaled structure block replaced by its rank-k PCA reconstruction."""
    s = ~condition_mask(val.rep)
    zv = np.asarray(model.scaler.transform(val.R))[:, s]
    mu = zv.mean(0)
    _, _, vt = np.linalg.svd(zv - mu, full_matrices=False)
    P = vt[:k]
    z = np.asarray(model.scaler.transform(test_R))
    z[:, s] = mu + (z[:, s] - mu) @ P.T @ P
    return model.scaler.inverse(z)


def previous_round(row: str, a, name: str) -> Path:
    r, t0 = row[4:].split("t")
    return a.work / name / ("cfg1" if int(r) == 1 else f"proj{int(r) - 1}t{t0}")


def projection_row(row: str, a, name: str, model: LoadedModel, work: Path
                   ) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Refined vectors of the previous round's crystals; writes their template set."""
    prev = previous_round(row, a, name)
    with open(prev / "summary.csv", newline="") as fh:
        done = [r for r in csv.DictReader(fh) if r.get("cif")]
    ids = [r["id"] for r in done]
    structs = [Structure.from_file(prev / r["cif"]) for r in done]
    TemplateSet.from_structures(ids, structs).save(work / "warm_starts.npz")
    R = encode_structures(structs, model.rep)
    t0 = int(row[4:].split("t")[1])
    return refine_vectors(model, R, t0, seed=a.seed + int(row[4:].split("t")[0])), ids


def vectors(row: str, a, val, test_R, models) -> np.ndarray:
    known = (condition_mask(val.rep), test_R)
    if row == "replace":
        return sample_vectors(models["uncond"], a.num, "ddim", 100, a.seed, known=known)
    if row.startswith("cfg"):
        return sample_vectors(models["cond"], a.num, "ddim", 100, a.seed, known=known,
                              guidance=float(row[3:]))  # fmt: skip
    if row.startswith("pca"):
        return pca_row(val, test_R, models["cond"] or models["uncond"], int(row[3:]))
    raise SystemExit(f"unknown row {row!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", type=Path, help="conditional checkpoint (for cfg rows)")
    ap.add_argument("--uncond", type=Path, help="default: the bundled model of the dataset")
    ap.add_argument("--rows", nargs="+", default=["replace", "cfg0", "cfg1", "cfg2"])
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--data-dir")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--features", type=Path, default=Path("runs/features"))
    ap.add_argument("--work", type=Path, default=Path("runs/conditional"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/conditional_structure"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    models = {"uncond": LoadedModel.load(a.uncond or model_path(a.dataset)),
              "cond": LoadedModel.load(a.model) if a.model else None}  # fmt: skip
    val = load_features(a.features / f"{a.dataset}_val_small.npz")
    test = load_features(a.features / f"{a.dataset}_test_small.npz")
    idx = np.sort(np.random.default_rng(a.seed).choice(len(test.ids), a.num, replace=False))
    ids, test_R = [test.ids[k] for k in idx], test.R[idx]
    tpl = cached_templates_path(a.dataset, "val", a.data_dir)
    name = a.dataset + (f"_{a.tag}" if a.tag else "")
    out_path = a.out / f"{name}.json"
    result = json.loads(out_path.read_text()) if out_path.exists() else {"rows": {}}
    rcfg = ReconstructConfig(trials=a.trials, hops=1, steps=300, seed=a.seed)
    clean = None
    for row in a.rows:
        if row in result["rows"] and result["rows"][row]["n"] == a.num:
            continue
        work = a.work / name / row
        work.mkdir(parents=True, exist_ok=True)
        feats = work / "vectors.npz"
        t0 = time.perf_counter()
        row_ids, starts = ids, tpl
        if row.startswith("proj"):
            starts = work / "warm_starts.npz"
        if not feats.exists():
            if row.startswith("proj"):
                R, row_ids = projection_row(row, a, name, models["cond"], work)
            else:
                R = vectors(row, a, val, test_R, models)
            save_features(FeatureSet(np.asarray(R), row_ids, val.rep, [], {"row": row}), feats)
        t_sample = time.perf_counter() - t0
        run_reconstruction(ReconstructJob(feats, work, rcfg, None, 8, False, not a.no_progress,
                                          starts))  # fmt: skip
        if clean is None:
            loaded = load_split(a.dataset, "test", a.data_dir)
            keep = set(ids)
            clean = {i: s for i, s in zip(loaded.ids, loaded.structures, strict=True)
                     if i in keep}  # fmt: skip
        result["rows"][row] = {**score_run_folder(work, clean, rcfg.threshold),
                               "sample_seconds": t_sample,
                               "seconds": time.perf_counter() - t0}  # fmt: skip
        result["meta"] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                          "model": str(a.model), "uncond": str(a.uncond or
                          f"bundled {a.dataset}"), "seed": a.seed, "split": "test "
                          "compositions, models trained on val", "templates": "val",
                          "reconstruction": rcfg.to_dict(),
                          "machine": "2 vCPU, 1 torch thread"}  # fmt: skip
        a.out.mkdir(parents=True, exist_ok=True)
        atomic_write(out_path, lambda p: p.write_text(json.dumps(result, indent=1)), force=True)
        print(row, json.dumps(result["rows"][row]), flush=True)


if __name__ == "__main__":
    main()
