"""Fréchet distance: zero for one distribution, closed forms for shifted and scaled Gaussians."""

from __future__ import annotations

import numpy as np
import pytest
from tests.test_train import REP

from structrepdiff.pipeline.proxy import frechet_by_block, frechet_distance, wasserstein_by_block
from structrepdiff.representation.scaler import Scaler


def test_closed_forms() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3))
    assert frechet_distance(a, b) < 0.01
    assert frechet_distance(a, b + np.array([2.0, 0.0, 0.0])) == pytest.approx(4.0, abs=0.05)
    # 1-D: FD = (μx − μy)² + (σx − σy)²
    assert frechet_distance(a[:, :1], 3.0 * b[:, :1] + 1.0) == pytest.approx(1.0 + 4.0, rel=0.02)
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


def test_by_block_covers_every_block_and_drops_non_finite_rows() -> None:
    rng = np.random.default_rng(1)
    D = REP.layout.dim
    X, Y = rng.normal(size=(500, D)), rng.normal(size=(500, D)) + 0.5
    X[0, 3] = np.nan
    fd = frechet_by_block(X, Y, REP, Scaler.fit(Y))
    assert set(fd) == {*REP.layout.slices, "all"}
    assert all(np.isfinite(v) and v > 0 for v in fd.values())
    assert fd["all"] > fd["lattice"]


def test_wasserstein_by_block_sees_shifts_and_shapes_that_fd_misses() -> None:
    rng = np.random.default_rng(2)
    D = REP.layout.dim
    Y = rng.normal(size=(4000, D))
    ident = Scaler.from_dict({"kind": "standard", "mean": np.zeros(D), "std": np.ones(D)})
    w = wasserstein_by_block(Y, Y + 0.5, REP, ident)  # a shift by c moves W1 by exactly c
    assert set(w) == {*REP.layout.slices, "all"}
    assert all(v == pytest.approx(0.5, abs=1e-9) for v in w.values())
    # same mean and variance, other shape (±1 coin flips against N(0, 1)): FD ~ 0, W1 is not
    coins = rng.choice([-1.0, 1.0], size=(4000, D))
    w_coin = wasserstein_by_block(coins, Y, REP, ident)["all"]
    assert frechet_distance(coins[:, :2], Y[:, :2]) < 0.05 and w_coin > 0.15
