"""The space-group prior p(group, Wyckoff pattern | composition) against the test split (issue
#26, deliverable 2): fitted on val (the training split here), scored on test compositions.

- top-1 / top-5 accuracy of the test crystal's group (groups ranked by their total
  probability), and top-1 / top-5 of its exact Wyckoff pattern;
- 10,000 draws (test compositions drawn with replacement, seeded, one (group, pattern) each):
  total variation and χ² = Σ_g (p_gen − p_test)² / p_test (over the test's groups; generated
  mass in groups the test lacks counts in TV only) against the test's group histogram;
- the fraction of drawn patterns that hold their composition;
- baseline: the training split's most common groups regardless of composition.

Groups come from pyxtal at ``--tol`` (0.01 Å; the evaluator's P1 uses 0.1); descriptions
are cached in ``--work``.

    python studies/space_group_prior.py --dataset mp_20
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from structrepdiff.symmetry.analyze import describe_split
from structrepdiff.symmetry.groups import pattern_problem
from structrepdiff.symmetry.learned import GroupClassifierConfig, LearnedPrior
from structrepdiff.symmetry.prior import SpaceGroupPrior, anonymize


def described(dataset: str, split: str, work: Path, tol: float = 0.01) -> list[dict]:
    """[{id, numbers, sg, pattern}] of every crystal of the split pyxtal can describe."""
    return [{"id": rid, "numbers": numbers.tolist(), "sg": w.sg, "pattern": list(w.pattern)}
            for rid, numbers, w in describe_split(dataset, split, work, tol=tol)]  # fmt: skip


def accuracy(prior, test: list[dict]) -> dict:
    hits = Counter()
    for r in test:
        dist = prior.distribution(r["numbers"])
        groups: dict[int, float] = {}
        for p, sg, _ in dist:
            groups[sg] = groups.get(sg, 0.0) + p
        ranked = sorted(groups, key=lambda g: -groups[g])
        truth = anonymize(r["numbers"], [tuple(x) for x in r["pattern"]])
        pats = [(sg, anonymize(r["numbers"], pat)) for _, sg, pat in dist]
        hits["group1"] += r["sg"] in ranked[:1]
        hits["group5"] += r["sg"] in ranked[:5]
        hits["pattern1"] += (r["sg"], truth) in pats[:1]
        hits["pattern5"] += (r["sg"], truth) in pats[:5]
        hits["none"] += not dist
    n = len(test)
    return {f"{k}_pct": 100 * v / n for k, v in hits.items()} | {"n": n}


def learned_accuracy(val: list[dict], test: list[dict], seed: int) -> dict:
    """A random forest p(group | composition features) fitted on val: top-1 / top-5 on test."""
    from sklearn.ensemble import RandomForestClassifier

    from structrepdiff.symmetry.learned import composition_features

    X = np.array([composition_features(r["numbers"]) for r in val])
    y = np.array([r["sg"] for r in val])
    clf = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=seed,
                                 n_jobs=1).fit(X, y)  # fmt: skip
    proba = clf.predict_proba(np.array([composition_features(r["numbers"]) for r in test]))
    top = clf.classes_[np.argsort(-proba, axis=1)[:, :5]]
    truth = np.array([r["sg"] for r in test])
    return {
        "group1_pct": 100 * float(np.mean(top[:, 0] == truth)),
        "group5_pct": 100 * float(np.mean((top == truth[:, None]).any(1))),
        "model": "RandomForest(200, min_samples_leaf=2) on composition features",
    }


def draws(prior, test: list[dict], num: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(test), size=num)
    groups, valid = Counter(), 0
    for k in picks:
        numbers = test[k]["numbers"]
        got = prior.sample(numbers, 1, rng)
        if got:
            sg, pat = got[0]
            groups[sg] += 1
            valid += pattern_problem(sg, pat, numbers) is None
    return {"valid_pct": 100 * valid / num, **compare(groups, Counter(r["sg"] for r in test))}


def compare(gen: Counter, test: Counter) -> dict:
    """Total variation and χ² of the group histograms."""
    ng, nt = sum(gen.values()), sum(test.values())
    keys = set(gen) | set(test)
    tv = 0.5 * sum(abs(gen[g] / ng - test[g] / nt) for g in keys)
    chi2 = sum((gen[g] / ng - test[g] / nt) ** 2 / (test[g] / nt) for g in test)
    p1 = 100 * gen[1] / ng
    return {"tv": tv, "chi2": chi2, "p1_pct": p1, "test_p1_pct": 100 * test[1] / nt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--num", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--score-num",
        type=int,
        default=0,
        help="score a seeded subset of this many test crystals (0: all)",
    )
    ap.add_argument(
        "--backoff-groups",
        type=int,
        default=SpaceGroupPrior.backoff_groups,
        help="groups the back-off enumerates (0: none; unseen formulas get none)",
    )
    ap.add_argument("--tol", type=float, default=0.01, help="pyxtal's symmetry tolerance, Å")
    ap.add_argument("--work", type=Path, default=Path("runs/space_group_prior"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/space_group_prior"))
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    val, test = (
        described(a.dataset, "val", a.work, a.tol),
        described(a.dataset, "test", a.work, a.tol),
    )
    if a.score_num and a.score_num < len(test):
        pick = np.random.default_rng(a.seed).choice(len(test), a.score_num, replace=False)
        test = [test[k] for k in sorted(pick)]
    prior = SpaceGroupPrior.fit((r["numbers"], r["sg"], [tuple(x) for x in r["pattern"]])
                                for r in val)  # fmt: skip
    prior.backoff_groups = a.backoff_groups
    items = [(r["numbers"], r["sg"], [tuple(x) for x in r["pattern"]]) for r in val]
    t1 = time.perf_counter()
    learned = LearnedPrior.fit(items, GroupClassifierConfig(seed=a.seed))
    fit_s = time.perf_counter() - t1
    common = [g for g, _ in Counter(r["sg"] for r in val).most_common(5)]
    res = {
        "dataset": a.dataset, "fit": "val", "scored": "test", "n_val": len(val),
        "n_test": len(test), "seed": a.seed, "num_draws": a.num,
        "prior": accuracy(prior, test), "draws": draws(prior, test, a.num, a.seed),
        "learned_prior": {**accuracy(learned, test),
                          "draws": draws(learned, test, a.num, a.seed),
                          "fit_seconds": round(fit_s, 1),
                          "config": asdict(learned.classifier.cfg)},
        "random_forest": learned_accuracy(val, test, a.seed),
        "baseline_most_common": {
            "group1_pct": 100 * np.mean([r["sg"] in common[:1] for r in test]),
            "group5_pct": 100 * np.mean([r["sg"] in common for r in test])},
        "seconds": round(time.perf_counter() - t0, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": "2 vCPU, 1 thread",
    }  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    res["tol"], res["backoff_groups"], res["score_num"] = a.tol, a.backoff_groups, a.score_num
    name = a.dataset if a.tol == 0.01 else f"{a.dataset}_tol{a.tol:g}"
    if a.backoff_groups != SpaceGroupPrior.backoff_groups:
        name += f"_backoff{a.backoff_groups}"
    (a.out / f"{name}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
