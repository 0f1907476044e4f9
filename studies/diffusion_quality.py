"""Cheap quality proxy for trained diffusion models, before any reconstruction (issue #4).

For each checkpoint and each sampler (``ddim:K`` or ``ddpm``): sample ``--num`` vectors with a
fixed seed, time it, count how many decode (atom count, composition, lattice), and compute the
Fréchet distance per block of R against ``--num`` test vectors, in one fixed space: a
per-feature standard scaler fitted on the training (val) features, whatever scaler the model
uses, so models with different scalers are compared on one scale. Decoded compositions are also
scored: the share that passes SMACT (CDVAE's composition validity), the share whose reduced
formula or anonymised formula (e.g. ABC3) occurs in the training split, and the 1-D
Wasserstein distance of the number of elements to test's. For the floor these are the test
compositions' own shares, and the W1 of training against test.
The floor is the same distance between ``--num`` training (val) vectors and the test vectors:
a model cannot be expected to beat the gap between two real splits.

    python studies/diffusion_quality.py --model runs/perov_5_mlp/checkpoint.pt \
        --test runs/features/perov_5_test_small.npz --samplers ddim:50 ddim:100 ddpm \
        --out benchmarks/results/diffusion_quality/perov_5_mlp.json

Results are written after every sampler (atomically); a rerun skips samplers already done
unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Composition
from scipy import stats

from structrepdiff.diffusion.denoisers import GaussianSkip
from structrepdiff.evaluate import composition_validity
from structrepdiff.features import load_features
from structrepdiff.pipeline.checkpoint import LoadedModel
from structrepdiff.pipeline.proxy import frechet_by_block, wasserstein_by_block
from structrepdiff.pipeline.sample import sample_vectors
from structrepdiff.pipeline.train import training_features_path
from structrepdiff.representation.decode import decode
from structrepdiff.representation.scaler import Scaler


def pick(R: np.ndarray, num: int, seed: int) -> np.ndarray:
    """A seeded subset of at most ``num`` finite rows of R."""
    R = R[np.isfinite(R).all(1)]
    idx = np.random.default_rng(seed).permutation(len(R))[:num]
    return R[np.sort(idx)]


def rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in d.items()}


def compositions(R: np.ndarray, model: LoadedModel) -> list[Composition | None]:
    """The decoded composition of each row (None where it does not decode)."""
    out: list[Composition | None] = []
    for d in decode(R, model.rep):
        out.append(Composition(dict(Counter(int(z) for z in d.numbers))) if d.ok else None)
    return out


def composition_stats(gen: list, train: list, test: list) -> dict:
    """Shares of decoded compositions that pass SMACT (CDVAE's composition validity) and that
    occur in training (formula, anonymised formula), and the W1 of the number of elements
    against test; denominators are all generated rows."""
    ok = [c for c in gen if c is not None]
    smact_ok = sum(bool(composition_validity(c).value) for c in ok)
    formulas = {c.reduced_formula for c in train}
    patterns = {c.anonymized_formula for c in train}
    n_el = [len(c) for c in ok]
    n = len(gen)
    w1 = stats.wasserstein_distance(n_el, [len(c) for c in test]) if n_el else None
    return {
        "smact_valid_pct": round(100 * smact_ok / n, 2),
        "known_formula_pct": round(100 * sum(c.reduced_formula in formulas for c in ok) / n, 2),
        "known_pattern_pct": round(100 * sum(c.anonymized_formula in patterns for c in ok) / n, 2),
        "n_elements_w1": None if w1 is None else round(float(w1), 4),
    }


def decode_stats(R: np.ndarray, model: LoadedModel) -> dict:
    dec = decode(R, model.rep)
    reasons: dict[str, int] = {}
    for d in dec:
        if not d.ok:
            key = d.reason.split(":")[0].split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
    n_atoms = [len(d.numbers) for d in dec if d.ok]
    return {"decodable": round(100.0 * len(n_atoms) / len(dec), 2), "reasons": reasons,
            "mean_atoms": round(float(np.mean(n_atoms)), 2) if n_atoms else None}  # fmt: skip


def run_sampler(model: LoadedModel, spec: str, num: int, seed: int, ref: dict) -> dict:
    kind, _, k = spec.partition(":")
    steps = int(k) if k else 100
    t0 = time.perf_counter()
    R = sample_vectors(model, num, kind, steps, seed, batch_size=500, progress=True)
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 2),
        "s_per_1000": round(1000 * seconds / num, 2),
        **decode_stats(R, model),
        **distances(R, ref["test"], model, ref["scaler"]),
        **composition_stats(compositions(R, model), ref["train_comp"], ref["test_comp"]),
    }


def distances(R: np.ndarray, test: np.ndarray, model: LoadedModel, scaler: Scaler) -> dict:
    return {"fd": rounded(frechet_by_block(R, test, model.rep, scaler)),
            "w1": rounded(wasserstein_by_block(R, test, model.rep, scaler))}  # fmt: skip


def save(out: Path, result: dict) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True, help="feature .npz of the test split")
    ap.add_argument("--train", type=Path, help="training feature .npz (default: next to model)")
    ap.add_argument("--samplers", nargs="+", default=["ddim:100"])
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--force", action="store_true")
    ap.add_argument(
        "--gaussian-only",
        action="store_true",
        help="sample with the fitted Gaussian part of a --gaussian-skip model only",
    )
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = LoadedModel.load(a.model)
    if a.gaussian_only:
        if not isinstance(model.net, GaussianSkip):
            raise SystemExit("--gaussian-only needs a model trained with --gaussian-skip")
        model.net = model.net.gaussian_eps
    tcfg = model.ckpt["train"]["config"]
    train_path = a.train or training_features_path(a.model.parent, tcfg["features"], tcfg["split"])
    train_all = load_features(train_path).R
    test, train = pick(load_features(a.test).R, a.num, a.seed), pick(train_all, a.num, a.seed)
    ref = {"test": test, "scaler": Scaler.fit(train_all[np.isfinite(train_all).all(1)]),
           "train_comp": [c for c in compositions(train_all, model) if c is not None],
           "test_comp": [c for c in compositions(test, model) if c is not None]}  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    result = json.loads(a.out.read_text()) if a.out.exists() and not a.force else {}
    result.update({
        "model": str(a.model), "step": int(model.ckpt["step"]), "gaussian_only": a.gaussian_only,
        "denoiser": model.ckpt["denoiser"], "num": a.num, "seed": a.seed, "test": str(a.test),
        "machine": f"{os.cpu_count()} CPU, torch {torch.__version__}, {a.threads} threads",
        "space": "standard scaler fitted on the training features",
        "floor_train_vs_test": {**distances(train, test, model, ref["scaler"]),
                                **composition_stats(ref["test_comp"], ref["train_comp"],
                                                    compositions(train, model))},
    })  # fmt: skip
    result.setdefault("samplers", {})
    for spec in a.samplers:
        if spec in result["samplers"]:
            continue
        result["samplers"][spec] = run_sampler(model, spec, a.num, a.seed, ref)
        result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        save(a.out, result)
        print(spec, json.dumps(result["samplers"][spec]))
    save(a.out, result)
    print("floor", json.dumps(result["floor_train_vs_test"]))


if __name__ == "__main__":
    main()
