"""Statistics of a set of compositions against a reference set and a training set.

For the composition model (issue #12): SMACT validity (CDVAE's test, with reasons), the
histogram and Wasserstein distance of the number of distinct elements, the Jensen–Shannon
divergence of element frequencies, uniqueness and formula novelty. Pure functions over
compositions from any source; nothing here imports model code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from pymatgen.core import Composition
from scipy import stats

from structrepdiff.evaluate.result import count_reasons
from structrepdiff.evaluate.structures import as_composition
from structrepdiff.evaluate.validity import composition_validity


def _comp(c) -> Composition:
    """`as_composition`, with an unreadable composition a one-line ValueError."""
    parsed = as_composition(c)
    if not parsed.ok:
        raise ValueError(parsed.reason)
    return parsed.value


def reduced_formulas(comps: Sequence) -> list[str]:
    """pymatgen reduced formulas (SrTiO3 for Sr2Ti2O6): the identity used for uniqueness
    and novelty."""
    return [_comp(c).reduced_formula for c in comps]


def element_frequencies(comps: Sequence) -> Counter:
    """Atoms per element summed over the set (each composition weighted by its atoms)."""
    total: Counter = Counter()
    for c in comps:
        for el, amt in _comp(c).items():
            total[el.symbol] += float(amt)
    return total


def js_divergence(p: Counter, q: Counter) -> float:
    """Jensen–Shannon divergence (bits, in [0, 1]) of two frequency tables."""
    keys = sorted(set(p) | set(q))
    a = np.array([p.get(k, 0.0) for k in keys], float)
    b = np.array([q.get(k, 0.0) for k in keys], float)
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())

    return 0.5 * kl(a) + 0.5 * kl(b)


def n_distinct_elements(comps: Sequence) -> np.ndarray:
    """(n,) distinct elements per composition."""
    return np.array([len(_comp(c).elements) for c in comps], dtype=np.int64)


def composition_statistics(comps: Sequence, reference: Sequence, training: Sequence) -> dict:
    """Statistics of ``comps`` (Compositions or {element: count} mappings with integer
    counts) against ``reference`` (e.g. the test split: #elements EMD, element JS) and
    ``training`` (novelty). Validity reasons are counted by kind."""
    if not comps:
        raise ValueError("no compositions to score")
    comps = [_comp(c) for c in comps]
    valid = [composition_validity(c) for c in comps]
    k, k_ref = n_distinct_elements(comps), n_distinct_elements(reference)
    formulas = reduced_formulas(comps)
    train_set = set(reduced_formulas(training))
    hist = Counter(k.tolist())
    return {
        "n": len(comps),
        "smact_valid_pct": 100.0 * sum(bool(v.value) for v in valid) / len(comps),
        "invalid_reasons": count_reasons(v.reason for v in valid),
        "n_elements_hist": {int(a): hist[a] for a in sorted(hist)},
        "mean_n_elements": float(k.mean()),
        "emd_n_elements": float(stats.wasserstein_distance(k, k_ref)),
        "element_js_bits": js_divergence(
            element_frequencies(comps), element_frequencies(reference)
        ),
        "unique_pct": 100.0 * len(set(formulas)) / len(comps),
        "novel_pct": 100.0 * sum(f not in train_set for f in formulas) / len(comps),
        "novel_unique_pct": 100.0 * len(set(formulas) - train_set) / len(comps),
    }
