"""Shared fixtures: small crystals built by hand (no dataset needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Reference tables and templates the tests build go to a session folder, never to the
    user's ~/.cache (tests that need their own cache set STRUCTREPDIFF_CACHE themselves)."""
    import os

    old = os.environ.get("STRUCTREPDIFF_CACHE")
    os.environ["STRUCTREPDIFF_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("STRUCTREPDIFF_CACHE", None)
    else:
        os.environ["STRUCTREPDIFF_CACHE"] = old


def random_skewed_structure(seed: int, n: int = 4, species=("Na", "Cl", "O", "Fe")) -> Structure:
    """A random triclinic cell (a 3-5 Å, angles 60-120°) with atoms well separated (>= 1 Å)."""
    rng = np.random.default_rng(seed)
    while True:
        params = [*rng.uniform(3.0, 5.0, 3), *rng.uniform(65.0, 115.0, 3)]
        try:
            lattice = Lattice.from_parameters(*params)
        except ValueError:
            continue
        if lattice.volume < 10:
            continue
        frac = rng.uniform(0, 1, (n, 3))
        s = Structure(lattice, [species[k % len(species)] for k in range(n)], frac)
        if n == 1 or s.distance_matrix[np.triu_indices(n, 1)].min() > 1.0:
            return s


@pytest.fixture
def skewed_structure() -> Structure:
    return random_skewed_structure(1)


PEROVSKITES = [("Sr", "Ti", 3.9), ("Ba", "Zr", 4.2), ("K", "Nb", 4.0), ("Ca", "Ti", 3.8)]


def perovskite(a_site: str, b_site: str, a: float, anion: str = "O") -> Structure:
    """Cubic ABX3 (Pm-3m), 5 atoms."""
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Structure(Lattice.cubic(a), [a_site, b_site, anion, anion, anion], frac)


def write_perov_splits(root, splits=(("test", 0.0), ("val", 0.05))):
    """A perov_5 data folder under ``root``: each split the four `PEROVSKITES`, lattice
    constants shifted by the split's offset (Å), ids ``<split><k>``; returns ``root``."""
    import pandas as pd

    (root / "perov_5").mkdir(parents=True, exist_ok=True)
    for split, shift in splits:
        rows = [{"material_id": f"{split}{k}", "cif": perovskite(a, b, c + shift).to(fmt="cif")}
                for k, (a, b, c) in enumerate(PEROVSKITES)]  # fmt: skip
        pd.DataFrame(rows).to_csv(root / "perov_5" / f"{split}.csv", index=False)
    return root
