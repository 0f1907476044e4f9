"""Build crystals from raw arrays and read simple properties, reporting failures as reasons."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from pymatgen.core import Composition, Element, Lattice, Structure

from structrepdiff.evaluate.result import Result, exception_reason, fail

# A composition given as a pymatgen Composition, a Structure (its composition), a mapping
# {element (symbol, Z or Element): amount} or a per-atom sequence of symbols or atomic numbers.
CompositionLike = Composition | Structure | Mapping | Sequence


def build_structure(
    lengths: Sequence[float],
    angles: Sequence[float],
    frac_coords: np.ndarray | Sequence[Sequence[float]],
    species: Sequence[int | str],
) -> Result[Structure]:
    """A Structure from lattice parameters and fractional coordinates, or the reason it fails.

    lengths: (3,) a, b, c in Å; angles: (3,) α, β, γ in degrees; frac_coords: (N, 3);
    species: (N,) atomic numbers or symbols. As CDVAE, a negative length fails
    ("non-positive lattice") and a construction error fails; unlike CDVAE, non-finite
    parameters or coordinates also fail here (CDVAE would build a NaN cell and call it valid).
    A tiny or zero volume is *not* a failure here: :func:`structure_validity` reports it.
    """
    try:
        params = np.asarray([*lengths, *angles], dtype=float)
        coords = np.asarray(frac_coords, dtype=float).reshape(-1, 3)
    except (TypeError, ValueError) as exc:
        return fail(exception_reason("unreadable crystal arrays", exc))
    if params.shape != (6,):
        return fail(f"unreadable crystal arrays: {params.size} lattice parameters, expected 6")
    if not (np.isfinite(params).all() and np.isfinite(coords).all()):
        return fail("non-finite lattice or coordinates")
    if params[:3].min() < 0:
        return fail(f"non-positive lattice: lengths {np.round(params[:3], 4).tolist()} Å")
    if len(species) != len(coords):
        return fail(f"unreadable crystal arrays: {len(species)} species for {len(coords)} sites")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lattice = Lattice.from_parameters(*params)
            return Result(Structure(lattice, list(species), coords, coords_are_cartesian=False))
    except Exception as exc:  # pymatgen raises many types for impossible input
        return fail(exception_reason("construction raises exception", exc))


def as_composition(composition: CompositionLike) -> Result[Composition]:
    """A pymatgen Composition from any :data:`CompositionLike`, or the reason it fails."""
    try:
        if isinstance(composition, Structure):
            return Result(composition.composition)
        if isinstance(composition, Composition):
            return Result(composition)
        if isinstance(composition, Mapping):
            return Result(Composition({_element(k): v for k, v in composition.items()}))
        if isinstance(composition, str):
            return Result(Composition(composition))
        counts = Counter(_element(x) for x in composition)
        return Result(Composition(counts))
    except Exception as exc:  # unknown symbols, bad amounts, wrong types
        return fail(exception_reason("unreadable composition", exc))


def _element(x: int | str | Element) -> Element:
    """An Element from an atomic number, a symbol or an Element."""
    if isinstance(x, Element):
        return x
    if isinstance(x, (int, np.integer)):
        return Element.from_Z(int(x))
    return Element(str(x))


def density(structure: Structure) -> float:
    """Mass density in g/cm³ (pymatgen ``Structure.density``), as CDVAE's density EMD."""
    return float(structure.density)


def n_elements(structure: Structure) -> int:
    """Number of distinct elements (CDVAE: ``len(set(structure.species))``; element symbols
    here, so oxidation-state decorations do not split one element into several)."""
    return len({el.symbol for el in structure.composition.elements})
