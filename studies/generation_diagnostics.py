"""Generation diagnostics before new models (issue #12, deliverable 1): which R vectors can the
decode → reconstruct (template starts) → evaluate path of Table 2 turn into crystals?

Rows (each ``--num`` vectors, seeded):
- ``noise<σ>``: real test vectors with Gaussian noise σ added in the model's scaled space to the
  structure blocks (EAD, d_min, lattice; composition and N stay exact, as they will be for a
  structure model conditioned on them). "How precise must a sample be?"
- ``resample``: val vectors (the training split) as they are — the memorisation ceiling.
- ``smote<w>``: x + w (y − x) for a val vector x and its nearest val neighbour y (scaled
  structure blocks) with the same element counts — same-composition interpolation.
- ``gauss``: structure blocks drawn from the exact conditional of a Gaussian fitted to the scaled
  val vectors, given the composition and N of a val vector — the floor.
- ``model``: today's bundled model, unconditional DDIM-100 (the first ``--num`` of Table 2's
  seed-0 samples).

Per row: median final loss, converged % (loss < threshold), P1 %, structure validity, and for
noise / resample rows the StructureMatcher match % to the clean crystal. Reconstruction as in
Table 2: template starts from val, 4 trials × 1 hop × 300 steps. Results go to
``--out/<dataset>.json`` after each row (resumable: finished rows are kept, and an interrupted
row resumes its reconstruction from ``--work``).

    python studies/generation_diagnostics.py --dataset perov_5 --num 200
"""

from __future__ import annotations

import argparse
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
from structrepdiff.pipeline.sample import sample_vectors
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction
from structrepdiff.reconstruct.templates import cached_templates_path
from structrepdiff.representation.condition import condition_mask

ROWS = ("noise0.01", "noise0.03", "noise0.1", "resample", "gauss", "model", "smote0.5",
        "noise0.3", "smote0.25")  # fmt: skip


def noise_row(test: FeatureSet, model: LoadedModel, sigma: float, idx: np.ndarray, seed: int):
    z = np.asarray(model.scaler.transform(test.R[idx]))
    eps = np.random.default_rng(seed).standard_normal(z.shape) * ~condition_mask(test.rep)
    return model.scaler.inverse(z + sigma * eps), [test.ids[k] for k in idx]


def smote_row(val: FeatureSet, model: LoadedModel, w: float, n: int, seed: int):
    z = np.asarray(model.scaler.transform(val.R))
    keys = [row.tobytes() for row in np.round(val.R[:, ~~condition_mask(val.rep)], 6)]
    groups: dict[bytes, list[int]] = {}
    for k, key in enumerate(keys):
        groups.setdefault(key, []).append(k)
    anchors = np.array([k for k, key in enumerate(keys) if len(groups[key]) > 1])
    pick = np.random.default_rng(seed).choice(anchors, min(n, len(anchors)), replace=False)
    s = ~condition_mask(val.rep)
    out, ids = [], []
    for a in pick:
        mates = [m for m in groups[keys[a]] if m != a]
        d = ((z[mates][:, s] - z[a, s]) ** 2).sum(1)
        b = mates[int(np.argmin(d))]
        out.append(z[a] + w * (z[b] - z[a]))
        ids.append(f"{val.ids[a]}+{val.ids[b]}")
    return model.scaler.inverse(np.stack(out)), ids, len(anchors)


def gauss_row(val: FeatureSet, model: LoadedModel, idx: np.ndarray, seed: int):
    """Structure | (composition, N) from the Gaussian fitted to the scaled val vectors."""
    z = np.asarray(model.scaler.transform(val.R))
    s = ~condition_mask(val.rep)
    mu, cov = z.mean(0), np.cov(z, rowvar=False)
    c = ~s
    A, B, C = cov[np.ix_(s, s)], cov[np.ix_(s, c)], cov[np.ix_(c, c)]
    K = B @ np.linalg.pinv(C, rcond=1e-8)
    cond_cov = A - K @ B.T
    L = np.linalg.cholesky(cond_cov + 1e-8 * np.eye(len(A)))
    rng = np.random.default_rng(seed)
    out = z[idx].copy()
    out[:, s] = (
        mu[s] + (z[idx][:, c] - mu[c]) @ K.T + rng.standard_normal((len(idx), s.sum())) @ L.T
    )
    return model.scaler.inverse(out), [f"gauss_{val.ids[k]}" for k in idx]


def vectors(row: str, a, val, test, model):
    rng = np.random.default_rng(a.seed)
    if row.startswith("noise"):
        idx = np.sort(rng.choice(len(test.ids), a.num, replace=False))
        return (*noise_row(test, model, float(row[5:]), idx, a.seed), {})
    if row == "resample":
        idx = np.sort(rng.choice(len(val.ids), a.num, replace=False))
        return val.R[idx], [val.ids[k] for k in idx], {}
    if row.startswith("smote"):
        R, ids, n_anchor = smote_row(val, model, float(row[5:]), a.num, a.seed)
        return R, ids, {"n_val_with_same_composition_partner": n_anchor}
    if row == "gauss":
        return (*gauss_row(val, model, rng.choice(len(val.ids), a.num), a.seed), {})
    R = sample_vectors(model, 1000, "ddim", 100, seed=0, batch_size=256)[: a.num]
    return R, [f"sample_{k:06d}" for k in range(a.num)], {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--rows", nargs="+", default=list(ROWS))
    ap.add_argument("--model", type=Path, help="default: the bundled model of the dataset")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--features", type=Path, default=Path("runs/features"))
    ap.add_argument("--work", type=Path, default=Path("runs/diagnostics"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/generation_diagnostics"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model = LoadedModel.load(a.model or model_path(a.dataset))
    val = load_features(a.features / f"{a.dataset}_val_small.npz")
    test = load_features(a.features / f"{a.dataset}_test_small.npz")
    if val.rep != model.rep:
        raise SystemExit("the feature files were made with another representation than the model")
    tpl = cached_templates_path(a.dataset, "val", a.data_dir)
    out_path = a.out / f"{a.dataset}.json"
    result = json.loads(out_path.read_text()) if out_path.exists() else {"rows": {}}
    rcfg = ReconstructConfig(trials=a.trials, hops=1, steps=300, seed=a.seed)
    splits: dict[str, dict[str, Structure]] = {}
    for row in a.rows:
        if row in result["rows"] and result["rows"][row]["n"] == a.num:
            continue
        work = a.work / a.dataset / row
        work.mkdir(parents=True, exist_ok=True)
        feats = work / "vectors.npz"
        extra = {}
        if not feats.exists():
            R, ids, extra = vectors(row, a, val, test, model)
            save_features(FeatureSet(np.asarray(R), ids, model.rep, [], {"row": row}), feats)
        elif len(load_features(feats).ids) != a.num:
            raise SystemExit(f"{feats} holds another --num than {a.num}; use another --work")
        t0 = time.perf_counter()
        run_reconstruction(ReconstructJob(feats, work, rcfg, None, 8, False, not a.no_progress,
                                          tpl))  # fmt: skip
        split = "test" if row.startswith("noise") else "val"
        if split not in splits:
            loaded = load_split(a.dataset, split, a.data_dir)
            splits[split] = dict(zip(loaded.ids, loaded.structures, strict=True))
        ids = set(load_features(feats).ids)
        clean = {i: s for i, s in splits[split].items() if i in ids}
        result["rows"][row] = {**score_run_folder(work, clean, rcfg.threshold), **extra,
                               "seconds": time.perf_counter() - t0}  # fmt: skip
        result["meta"] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                          "model": str(a.model or f"bundled {a.dataset}"), "seed": a.seed,
                          "reconstruction": rcfg.to_dict(), "templates": "val",
                          "machine": "2 vCPU, 1 torch thread"}  # fmt: skip
        a.out.mkdir(parents=True, exist_ok=True)
        atomic_write(out_path, lambda p: p.write_text(json.dumps(result, indent=1)), force=True)
        print(row, json.dumps(result["rows"][row]), flush=True)


if __name__ == "__main__":
    main()
