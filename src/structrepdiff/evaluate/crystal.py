"""Everything CDVAE computes per crystal (its ``Crystal`` class), in one call.

Validity of the composition is judged even when no structure could be built (CDVAE computes
it from the atom types); a crystal is ``valid`` when its composition and structure are valid
and, if fingerprints were requested, both fingerprints exist (CDVAE marks a crystal whose
fingerprint fails as invalid and drops both of its fingerprints).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from pymatgen.core import Structure

from structrepdiff.data.io import nonfinite_reason
from structrepdiff.evaluate.fingerprints import composition_fingerprint, structure_fingerprint
from structrepdiff.evaluate.structures import CompositionLike, build_structure
from structrepdiff.evaluate.validity import composition_validity, structure_validity


@dataclass(frozen=True)
class CrystalEval:
    """Per-crystal results; each ``*_reason`` is None on success. Fingerprints: structure
    (61,), standardised composition (132,), None when not computed or failed."""

    structure: Structure | None
    struct_valid: bool
    struct_reason: str | None
    comp_valid: bool
    comp_reason: str | None
    struct_fp: np.ndarray | None = None
    comp_fp: np.ndarray | None = None
    fp_reason: str | None = None

    @property
    def valid(self) -> bool:
        """CDVAE's ``valid``: composition and structure valid, no fingerprint failure."""
        return self.struct_valid and self.comp_valid and self.fp_reason is None


def evaluate_crystal(
    structure: Structure | None,
    composition: CompositionLike | None = None,
    fingerprints: bool = True,
    build_reason: str | None = None,
) -> CrystalEval:
    """Validity (and fingerprints) of one crystal; never raises.

    composition: defaults to the structure's; pass the atom types when the structure could
    not be built (``structure`` None, ``build_reason`` saying why).
    """
    missing = build_reason or "no structure"
    if structure is not None and (bad := nonfinite_reason(structure)):
        structure, missing = None, bad  # never reaches spglib / CrystalNN
    if structure is None:
        struct_valid, struct_reason = False, missing
    else:
        struct_valid, struct_reason = structure_validity(structure)
    source = composition if composition is not None else structure
    if source is None:
        comp_valid, comp_reason = False, "no composition"
    else:
        comp_valid, comp_reason = composition_validity(source)
    result = CrystalEval(
        structure, bool(struct_valid), struct_reason, bool(comp_valid), comp_reason
    )
    if not fingerprints:
        return result
    return _with_fingerprints(result, source, missing)


def _with_fingerprints(
    result: CrystalEval, source: CompositionLike | None, missing: str
) -> CrystalEval:
    """``result`` with both fingerprints, or neither and the reason (as CDVAE)."""
    if result.structure is None or source is None:
        return replace(result, fp_reason=missing)
    sfp = structure_fingerprint(result.structure)
    if not sfp.ok:
        return replace(result, fp_reason=sfp.reason)
    cfp = composition_fingerprint(source)
    if not cfp.ok:
        return replace(result, fp_reason=cfp.reason)
    return replace(result, struct_fp=sfp.value, comp_fp=cfp.value)


def evaluate_arrays(
    lengths: Sequence[float],
    angles: Sequence[float],
    frac_coords: np.ndarray | Sequence[Sequence[float]],
    atom_types: Sequence[int | str],
    fingerprints: bool = True,
) -> CrystalEval:
    """Build a crystal from CDVAE-style arrays (Å, degrees, fractional, Z) and evaluate it."""
    built = build_structure(lengths, angles, frac_coords, atom_types)
    return evaluate_crystal(built.value, atom_types, fingerprints, build_reason=built.reason)
