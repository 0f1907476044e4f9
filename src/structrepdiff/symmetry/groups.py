"""Space-group tables: Wyckoff orbits as affine maps, centering and crystal system.

Settings are pyxtal's (ITA standard: unique axis b, hexagonal axes for R groups). A Wyckoff
orbit with multiplicity m is m affine maps of one free vector p = (x, y, z) in conventional
fractional coordinates: site k is ``rot[k] @ p + trans[k]``. Special positions have maps of
rank < 3 (e.g. ``x, x, 0``), so the components of p outside their range get no gradient and
never move. Sites are listed so that the first ``m / centering`` of them are distinct modulo
the centering translations (the orbit in the primitive cell `centering_matrix` gives).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Rows: primitive basis vectors in conventional fractional coordinates (r = f_conv @ L_conv,
# L_prim = T @ L_conv). R groups are in the hexagonal (obverse) setting, as pyxtal has them.
_CENTERING = {
    "P": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "A": ((1, 0, 0), (0, 0.5, 0.5), (0, -0.5, 0.5)),
    "C": ((0.5, 0.5, 0), (-0.5, 0.5, 0), (0, 0, 1)),
    "I": ((-0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.5, 0.5, -0.5)),
    "F": ((0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)),
    "R": ((2 / 3, 1 / 3, 1 / 3), (-1 / 3, 1 / 3, 1 / 3), (-1 / 3, -2 / 3, 1 / 3)),
}
SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal",
           "cubic")  # fmt: skip
_SYSTEM_END = (2, 15, 74, 142, 167, 194, 230)  # last space group of each crystal system


def check_group(sg: int) -> None:
    """Raise ValueError unless ``sg`` is a space-group number 1–230."""
    if isinstance(sg, bool) or int(sg) != sg or not 1 <= int(sg) <= 230:
        raise ValueError(f"space group must be a number from 1 to 230, got {sg!r}")


def crystal_system(sg: int) -> str:
    """The crystal system of space group ``sg`` (1–230)."""
    check_group(sg)
    return SYSTEMS[next(k for k, end in enumerate(_SYSTEM_END) if sg <= end)]


@lru_cache(maxsize=256)
def _group(sg: int):
    from pyxtal.symmetry import Group

    check_group(sg)
    return Group(int(sg))


def group_symbol(sg: int) -> str:
    """The Hermann–Mauguin symbol of ``sg`` (e.g. Fm-3m)."""
    return _group(sg).symbol


def centering_matrix(sg: int) -> np.ndarray:
    """(3, 3) T with L_prim = T @ L_conv (rows), for the centering of ``sg``'s symbol."""
    return np.array(_CENTERING[group_symbol(sg)[0]], dtype=float)


def centering_order(sg: int) -> int:
    """Lattice points per conventional cell (1, 2, 3 or 4)."""
    return round(1.0 / abs(np.linalg.det(centering_matrix(sg))))


@dataclass(frozen=True)
class Orbit:
    """One Wyckoff position of a group.

    Attributes:
        letter: Wyckoff letter.
        multiplicity: sites per conventional cell.
        dof: free parameters (rank of the site map).
        rot: (m, 3, 3) and trans: (m, 3): site k = rot[k] @ p + trans[k], conventional
            fractional; the first m / centering sites are distinct modulo the centering.
    """

    letter: str
    multiplicity: int
    dof: int
    rot: np.ndarray
    trans: np.ndarray

    def sites(self, p: np.ndarray) -> np.ndarray:
        """(m, 3) conventional fractional sites of free vector p (3,)."""
        return np.einsum("kij,j->ki", self.rot, p) + self.trans


def _primitive_first(sg: int, rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Site order with the sites distinct modulo the centering first."""
    p = np.array([0.1234, 0.3571, 0.7213])  # a generic point: no accidental coincidences
    f = (np.einsum("kij,j->ki", rot, p) + trans) @ np.linalg.inv(centering_matrix(sg))
    f = f - np.floor(f + 1e-9)
    first, rest = [], []
    for k in range(len(f)):
        d = f[first] - f[k]
        d -= np.round(d)
        (rest if first and (np.abs(d).max(1) < 1e-6).any() else first).append(k)
    return np.array(first + rest)


@lru_cache(maxsize=256)
def group_orbits(sg: int) -> dict[str, Orbit]:
    """Every Wyckoff position of ``sg`` by letter."""
    out = {}
    for wp in _group(sg).Wyckoff_positions:
        rot = np.array([op.rotation_matrix for op in wp.ops], dtype=float)
        trans = np.array([op.translation_vector for op in wp.ops], dtype=float)
        order = _primitive_first(sg, rot, trans)
        out[wp.letter] = Orbit(wp.letter, int(wp.multiplicity), int(wp.get_dof()),
                               rot[order], trans[order])  # fmt: skip
    return out


def pattern_counts(sg: int, pattern, primitive: bool) -> dict[int, int]:
    """Atoms per species that ``pattern`` ((Z, letter), ...) puts in the primitive cell (or the
    conventional one)."""
    orbits, c = group_orbits(sg), centering_order(sg)
    counts: dict[int, int] = {}
    for z, letter in pattern:
        m = orbits[letter].multiplicity
        counts[int(z)] = counts.get(int(z), 0) + (m // c if primitive else m)
    return counts


def pattern_problem(sg: int, pattern, numbers) -> str | None:
    """Why ``pattern`` ((Z, letter), ...) in group ``sg`` cannot hold the atoms ``numbers``
    (as a primitive or conventional cell), else None. A position without free parameters
    holds one orbit only."""
    try:
        check_group(sg)
    except ValueError as exc:
        return str(exc)
    orbits = group_orbits(sg)
    unknown = sorted({letter for _, letter in pattern if letter not in orbits})
    if unknown:
        return f"space group {sg} has no Wyckoff position {', '.join(unknown)}"
    fixed = [letter for _, letter in pattern if orbits[letter].dof == 0]
    twice = sorted({x for x in fixed if fixed.count(x) > 1})
    if twice:
        return f"Wyckoff position {sg}{twice[0]} has no free parameter and holds one orbit only"
    zs, counts = np.unique(np.asarray(numbers, dtype=int), return_counts=True)
    want = dict(zip(zs.tolist(), counts.tolist(), strict=True))
    if want in (pattern_counts(sg, pattern, True), pattern_counts(sg, pattern, False)):
        return None
    have, label = pattern_counts(sg, pattern, True), pattern_label(sg, pattern)
    return f"Wyckoff pattern {label} holds {have} per primitive cell, not {want}"


def pattern_label(sg: int, pattern) -> str:
    """A short label, e.g. ``225: Na4a Cl4b``."""
    from pymatgen.core import Element

    orbits = group_orbits(sg)
    parts = [f"{Element.from_Z(int(z)).symbol}{orbits[x].multiplicity}{x}" for z, x in pattern]
    return f"{sg}: {' '.join(parts)}"
