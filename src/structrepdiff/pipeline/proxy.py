"""Cheap quality proxies on R before reconstruction: Fréchet and marginal Wasserstein distances
per block of R.

FD(X, Y) = ‖μ_X − μ_Y‖² + Tr(Σ_X + Σ_Y − 2 (Σ_X Σ_Y)^{1/2}) between Gaussians fitted to two
sets of vectors, computed in the scaled space (so every feature counts alike) for each named
block of R and for the whole vector. Compare generated-vs-test against val-vs-test (the floor).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, stats

from structrepdiff.representation.encode import Representation
from structrepdiff.representation.scaler import Scaler


def frechet_distance(X: np.ndarray, Y: np.ndarray) -> float:
    """FD between Gaussians fitted to the rows of X (n, d) and Y (m, d); n, m >= 2."""
    X, Y = np.atleast_2d(np.asarray(X, float)), np.atleast_2d(np.asarray(Y, float))
    if X.shape[1] != Y.shape[1] or len(X) < 2 or len(Y) < 2:
        raise ValueError(f"need two sets of >= 2 vectors of one length, got {X.shape}, {Y.shape}")
    mx, my = X.mean(0), Y.mean(0)
    cx, cy = np.atleast_2d(np.cov(X, rowvar=False)), np.atleast_2d(np.cov(Y, rowvar=False))
    root = linalg.sqrtm(cx @ cy)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mx - my) ** 2).sum() + np.trace(cx + cy - 2 * root))


def frechet_by_block(X: np.ndarray, Y: np.ndarray, rep: Representation, scaler: Scaler
                     ) -> dict[str, float]:  # fmt: skip
    """FD per named block of R (and ``all``), after scaling both sets with ``scaler``.

    Rows with non-finite values are dropped first (they are counted by decode, not here).
    """
    X, Y = (np.asarray(scaler.transform(np.asarray(A, float))) for A in (X, Y))
    X, Y = X[np.isfinite(X).all(1)], Y[np.isfinite(Y).all(1)]
    out = {name: frechet_distance(X[:, sl], Y[:, sl]) for name, sl in rep.layout.slices.items()}
    out["all"] = frechet_distance(X, Y)
    return out


def wasserstein_by_block(X: np.ndarray, Y: np.ndarray, rep: Representation, scaler: Scaler
                         ) -> dict[str, float]:  # fmt: skip
    """Mean over features of the 1-D Wasserstein distance between the marginals of X and Y,
    per named block of R (and ``all``), in scaled units.

    Fréchet distance sees only means and covariances, so a Gaussian fitted to the data scores
    at the floor; per-feature marginals show what it misses (e.g. sparse composition columns).
    """
    X, Y = (np.asarray(scaler.transform(np.asarray(A, float))) for A in (X, Y))
    X, Y = X[np.isfinite(X).all(1)], Y[np.isfinite(Y).all(1)]
    w = np.array([stats.wasserstein_distance(X[:, j], Y[:, j]) for j in range(X.shape[1])])
    out = {name: float(w[sl].mean()) for name, sl in rep.layout.slices.items()}
    out["all"] = float(w.mean())
    return out
