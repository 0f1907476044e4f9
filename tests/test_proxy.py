"""Fréchet distance: zero for one distribution, closed forms for shifted and scaled Gaussians."""

from __future__ import annotations

import numpy as np
import pytest
from tests.test_train import REP

from structrepdiff.diffusion.proxy import frechet_by_block, frechet_distance
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
