"""R is invariant to translation, rotation, permutation, periodic images and cell choice.

float64, paper preset, compared to 1e-7 relative (DESIGN.md §7); features below 1e-10 of the
block maximum are compared absolutely at that floor.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from conftest import random_skewed_structure
from structrepdiff.descriptor.config import PRESETS
from structrepdiff.representation.encode import Representation, encode_structures

REP = Representation(PRESETS["paper"], atomic_numbers=(8, 11, 17, 26), n_max=20)
SL = REP.layout.slices


def _structures() -> list[Structure]:
    return [random_skewed_structure(21, n=4), random_skewed_structure(22, n=3)]


def _R(structures: list[Structure]) -> np.ndarray:
    return encode_structures(structures, REP)


def assert_same(a: np.ndarray, b: np.ndarray, blocks=tuple(SL)) -> None:
    for name in blocks:
        x, y = a[..., SL[name]], b[..., SL[name]]
        floor = 1e-10 * max(np.abs(x).max(), 1e-300)
        np.testing.assert_allclose(y, x, rtol=1e-7, atol=floor, err_msg=name)


@pytest.fixture(scope="module")
def base() -> tuple[list[Structure], np.ndarray]:
    structures = _structures()
    return structures, _R(structures)


def test_translation(base) -> None:
    structures, R = base
    moved = [
        Structure(
            s.lattice,
            s.species,
            s.cart_coords + np.array([1.234, -0.77, 3.1]),
            coords_are_cartesian=True,
        )
        for s in structures
    ]
    assert_same(R, _R(moved))


def test_rotation(base) -> None:
    structures, R = base
    rot = Rotation.from_euler("zyx", [33.0, -71.0, 12.0], degrees=True).as_matrix()
    rotated = [
        Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.frac_coords) for s in structures
    ]
    assert_same(R, _R(rotated))


def test_permutation(base) -> None:
    structures, R = base
    perm = [
        Structure.from_sites([s[k] for k in np.random.default_rng(3).permutation(len(s))])
        for s in structures
    ]
    assert_same(R, _R(perm))


def test_periodic_images(base) -> None:
    structures, R = base
    shift = np.random.default_rng(4).integers(-3, 4, (4, 3))
    imaged = [Structure(s.lattice, s.species, s.frac_coords + shift[: len(s)]) for s in structures]
    assert_same(R, _R(imaged))


def test_equivalent_cell(base) -> None:
    """A sheared, unimodular change of basis describes the same crystal: same R after Niggli."""
    structures, R = base
    M = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]])  # det 1
    other = [
        Structure(
            Lattice(M @ s.lattice.matrix), s.species, s.cart_coords, coords_are_cartesian=True
        )
        for s in structures
    ]
    assert not np.allclose(other[0].lattice.abc, structures[0].lattice.abc)
    assert_same(R, _R(other))


def test_supercell_same_pooled_features(base) -> None:
    structures, R = base
    sup = [s.make_supercell([2, 1, 1], in_place=False) for s in structures]
    R2 = _R(sup)
    assert_same(R, R2, blocks=("ead_max", "ead_min", "d_min", "composition"))
    np.testing.assert_allclose(R2[:, SL["n_atoms"]], 2 * R[:, SL["n_atoms"]], rtol=1e-12)
    vol = lambda r: Lattice.from_parameters(*r[SL["lattice"]]).volume  # noqa: E731
    for a, b in zip(R, R2, strict=True):
        assert vol(b) == pytest.approx(2 * vol(a), rel=1e-9)


def test_different_crystals_differ(base) -> None:
    """Guard against a constant encoder: distinct crystals and a strained copy give another R."""
    structures, R = base
    assert np.abs(R[0] - R[1]).max() > 1e-3
    s = structures[0].copy()
    s.apply_strain(0.02)
    assert np.abs(_R([s])[0, SL["ead_max"]] - R[0, SL["ead_max"]]).max() > 1e-6
