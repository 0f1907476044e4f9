"""Symmetric starting points from pyxtal: random crystals with the target's species counts and
cell, in a space group that the cell allows (issue #3, "symmetric starting points").

P-1 fits every cell; orthogonal, tetragonal, cubic, hexagonal and monoclinic (unique axis b)
cells in pyxtal's standard orientation also get their holohedral primitive group, whose special
positions many MP-20 prototypes use. A group whose Wyckoff positions cannot hold the
composition is skipped (pyxtal raises), so every start has exactly the target's atoms.
Needs `pip install pyxtal==1.1.5` (the `bench` extra).
"""

from __future__ import annotations

import warnings

import numpy as np


def _close(x: float, y: float, tol: float = 1e-3) -> bool:
    return abs(x - y) <= tol * max(abs(x), abs(y), 1.0)


def compatible_groups(lattice: np.ndarray) -> list[tuple[int, str]]:
    """(space group, pyxtal lattice type) pairs that the cell (a, b, c, α, β, γ) allows."""
    a, b, c, al, be, ga = map(float, lattice)
    out = [(2, "triclinic")]
    right = _close(al, 90) and _close(be, 90) and _close(ga, 90)
    if right:
        out.append((47, "orthorhombic"))
        if _close(a, b):
            out.append((123, "tetragonal"))
            if _close(b, c):
                out.append((221, "cubic"))
    elif _close(al, 90) and _close(be, 90) and _close(ga, 120) and _close(a, b):
        out += [(191, "hexagonal"), (164, "hexagonal")]
    elif _close(al, 90) and _close(ga, 90):
        out.append((10, "monoclinic"))
    return out


def symmetric_starts(numbers: np.ndarray, lattice: np.ndarray, k: int, seed: int,
                     max_tries: int = 40) -> list[np.ndarray]:  # fmt: skip
    """Up to k fractional starts (n, 3) in target atom order (numbers sorted by Z)."""
    from pymatgen.core import Element
    from pyxtal import pyxtal
    from pyxtal.lattice import Lattice as PyxtalLattice

    species, counts = np.unique(numbers, return_counts=True)
    symbols = [Element.from_Z(int(z)).symbol for z in species]
    groups = compatible_groups(lattice)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for _ in range(max_tries):
        if len(out) >= k:
            break
        sg, ltype = groups[int(rng.integers(len(groups)))]
        crystal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_random(3, sg, symbols, counts.tolist(),
                                    lattice=PyxtalLattice.from_para(*lattice, ltype=ltype),
                                    random_state=int(rng.integers(2**31)))  # fmt: skip
                s = crystal.to_pymatgen()
        except Exception:  # pyxtal: composition does not fit this group's Wyckoff positions
            continue
        if len(s) != len(numbers):
            continue
        z = np.array([site.specie.Z for site in s])
        out.append(np.asarray(s.frac_coords)[np.argsort(z, kind="stable")])
    return out
