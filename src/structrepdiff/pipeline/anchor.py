"""Retrieval-anchored sampling (SDEdit): start the reverse diffusion from a training crystal.

For a composition, group and Wyckoff pattern, the anchor is the training crystal of the same
group and anonymous pattern whose composition is closest (standardised `composition_features`
distance), with its species replaced rank for rank and re-encoded as R. Its structure part is
noised to step t₀ and denoised given the composition (and the group, for a group-conditioned
model) by `refine_vectors`. t₀ near 0 returns the template; t₀ = T forgets it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from structrepdiff.reconstruct.symmetric import SymTemplates, substituted_xyz
from structrepdiff.symmetry.analyze import WyckoffCrystal
from structrepdiff.symmetry.learned import composition_features
from structrepdiff.symmetry.prior import (
    Pattern,
    _ranked_species,
    anonymize,
    anonymous_formula,
    instantiate,
)


def _nearest(found: list, numbers):
    """The (id, numbers, WyckoffCrystal) of ``found`` nearest in composition to ``numbers``
    (L1 over `composition_features` scaled by their spread among ``found``)."""
    feats = np.stack([composition_features(f[1]) for f in found])
    scale = feats.std(0) + 1e-6
    d = np.abs((feats - composition_features(numbers)) / scale).sum(1)
    return found[int(np.argmin(d))]


def retrieve(templates: SymTemplates, numbers, sg: int | None = None,
             pattern: Pattern | None = None, exclude: str | None = None
             ) -> WyckoffCrystal | None:  # fmt: skip
    """The training crystal nearest in composition to ``numbers`` among those of group ``sg``
    and ``pattern``'s anonymous pattern (or, with ``sg`` None, among all of the same
    anonymous formula), element-substituted onto ``numbers``' species rank for rank (orbits
    in ``pattern``'s order when given); None when the training split has none (``exclude``:
    an id to skip)."""
    if sg is None:
        found = [f for f in templates.of_formula(anonymous_formula(numbers)) if f[0] != exclude]
    else:
        key = (sg, anonymize(numbers, pattern))
        found = [f for f in templates.index.get(key, []) if f[0] != exclude]
    if not found:
        return None
    _, t_numbers, w = _nearest(found, numbers)
    if pattern is None:
        pattern = instantiate(numbers, anonymize(t_numbers, w.pattern))
    xyz = substituted_xyz(_ranked_species(numbers), pattern, t_numbers, w)
    return WyckoffCrystal(w.sg, tuple(pattern), xyz, np.asarray(w.lattice, float))


def anchor_vectors(rep, templates: SymTemplates, compositions: Sequence, choices: Sequence,
                   exclude: Sequence[str | None] | None = None
                   ) -> tuple[np.ndarray, list[bool]]:  # fmt: skip
    """(R (n, D) of each sample's anchor, found (n,)): rows without an anchor (no training
    crystal of the group and pattern, or a choice that is a reason) are NaN."""
    from structrepdiff.representation.encode import encode_structures

    R = np.full((len(compositions), rep.layout.dim), np.nan)
    found, structures, rows = [], [], []
    for k, (numbers, c) in enumerate(zip(compositions, choices, strict=True)):
        w = (
            None
            if isinstance(c, str)
            else retrieve(
                templates, numbers, c[0], c[1], exclude=None if exclude is None else exclude[k]
            )
        )
        found.append(w is not None)
        if w is not None:
            structures.append(w.to_structure())
            rows.append(k)
    if structures:
        R[rows] = encode_structures(structures, rep)
    return R, found
