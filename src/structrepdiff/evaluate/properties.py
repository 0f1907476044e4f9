"""Property distributions: Wasserstein distance (EMD) and CDVAE's seeded draw of valid samples.

CDVAE (``GenEval``) draws ``n_samples = 1000`` of the *valid* generated crystals (composition
valid, structure valid and fingerprints computable) without replacement and compares their
density and number of elements with those of the whole test set by
``scipy.stats.wasserstein_distance``. CDVAE used the global ``np.random`` state and raised when
fewer than 1,000 were valid; here the draw takes a seed or Generator and, when too few are
valid, returns all of them with ``complete = False`` so the caller can label the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import wasserstein_distance

N_PROPERTY_SAMPLES = 1000


def property_emd(gen_values: Sequence[float], ref_values: Sequence[float]) -> float:
    """Wasserstein-1 distance between two 1-D samples (same unit as the values).

    NaN when either sample is empty.
    """
    gen = np.asarray(gen_values, dtype=float).ravel()
    ref = np.asarray(ref_values, dtype=float).ravel()
    if gen.size == 0 or ref.size == 0:
        return float("nan")
    return float(wasserstein_distance(gen, ref))


@dataclass(frozen=True)
class ValidSample:
    """Indices (into the full generated list) of the drawn valid crystals, shape (k,)."""

    indices: np.ndarray
    n_valid: int
    n_requested: int

    @property
    def complete(self) -> bool:
        """True when ``n_requested`` crystals were drawn (enough were valid)."""
        return len(self.indices) == self.n_requested


def sample_valid(
    valid: Sequence[bool],
    n: int = N_PROPERTY_SAMPLES,
    seed: int | np.random.Generator = 0,
) -> ValidSample:
    """Draw ``n`` distinct valid crystals uniformly at random (``valid``: (M,) bool flags).

    With fewer than ``n`` valid crystals all valid ones are returned (``complete`` False).
    The same seed and flags always give the same indices.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    valid_idx = np.flatnonzero(np.asarray(valid, dtype=bool))
    if len(valid_idx) <= n:
        return ValidSample(valid_idx, len(valid_idx), n)
    chosen = rng.choice(len(valid_idx), size=n, replace=False)
    return ValidSample(valid_idx[chosen], len(valid_idx), n)
