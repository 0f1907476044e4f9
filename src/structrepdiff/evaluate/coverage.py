"""Coverage recall / precision (COV-R, COV-P), as CDVAE's ``compute_cov``.

For every reference crystal, the distance to the nearest generated crystal is taken
separately in structure-fingerprint space and in composition-fingerprint space; the reference
is covered (recall) when both minima are within their cutoffs. The two minima may come from
*different* generated crystals, exactly as in CDVAE. Precision is the same from the generated
side: generated crystals whose nearest reference distances are both within the cutoffs,
divided by *all* generated crystals, including those without fingerprints (CDVAE passes the
count before filtering). Generated crystals enter the distances only when both fingerprints
exist; CDVAE does not filter on validity here, so struct- or composition-invalid crystals with
fingerprints count too.

Reference crystals without fingerprints are dropped (and counted); CDVAE would have crashed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from structrepdiff.evaluate.cdvae_constants import (
    COV_CUTOFFS_CDVAE,
    COV_CUTOFFS_PAPER,
    CovCutoffs,
)

COV_CUTOFF_SETS: dict[str, dict[str, CovCutoffs]] = {
    "cdvae": COV_CUTOFFS_CDVAE,
    "paper": COV_CUTOFFS_PAPER,
}
_CHUNK = 2048  # generated rows per distance block: bounds memory at CHUNK x n_ref floats


def cov_cutoffs(dataset: str, source: str = "cdvae") -> CovCutoffs:
    """Thresholds for ``dataset`` ("mp_20", "carbon_24", "perov_5") from ``source``
    ("cdvae": CDVAE's code, "paper": the StructRepDiff paper)."""
    try:
        table = COV_CUTOFF_SETS[source]
    except KeyError:
        raise ValueError(f"unknown cutoff source {source!r}; known: cdvae, paper") from None
    try:
        return table[dataset]
    except KeyError:
        raise ValueError(f"no COV cutoffs for {dataset!r}; known: {', '.join(table)}") from None


def _paired(
    struct_fps: Sequence[np.ndarray | None], comp_fps: Sequence[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the entries where both fingerprints exist: (M, Ds) and (M, Dc) float64."""
    if len(struct_fps) != len(comp_fps):
        raise ValueError(f"{len(struct_fps)} structure but {len(comp_fps)} composition fps")
    keep = [(s, c) for s, c in zip(struct_fps, comp_fps, strict=True) if s is not None]
    keep = [(s, c) for s, c in keep if c is not None]
    if not keep:
        return np.zeros((0, 0)), np.zeros((0, 0))
    return (
        np.asarray([s for s, _ in keep], dtype=float),
        np.asarray([c for _, c in keep], dtype=float),
    )


def _nearest_distances(gen: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min Euclidean distance per generated row (M,) and per reference row (R,), in blocks."""
    to_ref = np.empty(len(gen))
    to_gen = np.full(len(ref), np.inf)
    for start in range(0, len(gen), _CHUNK):
        block = cdist(gen[start : start + _CHUNK], ref)
        to_ref[start : start + len(block)] = block.min(axis=1)
        np.minimum(to_gen, block.min(axis=0), out=to_gen)
    return to_ref, to_gen


def nearest_reference_distances(
    gen_struct_fps: Sequence[np.ndarray | None],
    gen_comp_fps: Sequence[np.ndarray | None],
    ref_struct_fps: Sequence[np.ndarray | None],
    ref_comp_fps: Sequence[np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray]:
    """Per generated crystal, the distance to the nearest reference crystal in structure and
    in composition fingerprint space, each minimum taken separately as COV-P takes them:
    two (len(gen),) arrays, NaN where a generated crystal lacks either fingerprint (or no
    reference has both). A crystal counts for COV-P when both are within the cutoffs."""
    has = [s is not None and c is not None for s, c in zip(gen_struct_fps, gen_comp_fps,
                                                             strict=True)]  # fmt: skip
    s_out, c_out = np.full(len(has), np.nan), np.full(len(has), np.nan)
    gs, gc = _paired(gen_struct_fps, gen_comp_fps)
    rs, rc = _paired(ref_struct_fps, ref_comp_fps)
    if len(gs) and len(rs):
        s_out[has] = _nearest_distances(gs, rs)[0]
        c_out[has] = _nearest_distances(gc, rc)[0]
    return s_out, c_out


def coverage(
    gen_struct_fps: Sequence[np.ndarray | None],
    gen_comp_fps: Sequence[np.ndarray | None],
    ref_struct_fps: Sequence[np.ndarray | None],
    ref_comp_fps: Sequence[np.ndarray | None],
    struct_cutoff: float,
    comp_cutoff: float,
) -> dict[str, Any]:
    """COV-R, COV-P (fractions in [0, 1]) and CDVAE's mean nearest distances (AMSD / AMCD).

    Fingerprints: structure (61,) and *standardised* composition (132,) vectors, None where
    they could not be computed. Returns keys cov_recall, cov_precision, amsd_recall,
    amsd_precision, amcd_recall, amcd_precision (NaN when undefined), n_generated,
    n_generated_with_fp, n_reference, n_reference_with_fp.
    """
    gs, gc = _paired(gen_struct_fps, gen_comp_fps)
    rs, rc = _paired(ref_struct_fps, ref_comp_fps)
    out: dict[str, Any] = {
        "n_generated": len(gen_struct_fps),
        "n_generated_with_fp": len(gs),
        "n_reference": len(ref_struct_fps),
        "n_reference_with_fp": len(rs),
    }
    if len(gs) == 0 or len(rs) == 0:
        nan = float("nan")
        # Nothing can be covered; a fraction over an empty set is undefined.
        out.update(cov_recall=0.0 if len(rs) else nan)
        out.update(cov_precision=0.0 if len(gen_struct_fps) else nan)
        out.update(amsd_recall=nan, amsd_precision=nan, amcd_recall=nan, amcd_precision=nan)
        return out
    s_prec, s_rec = _nearest_distances(gs, rs)
    c_prec, c_rec = _nearest_distances(gc, rc)
    covered_ref = (s_rec <= struct_cutoff) & (c_rec <= comp_cutoff)
    covered_gen = (s_prec <= struct_cutoff) & (c_prec <= comp_cutoff)
    out.update(
        cov_recall=float(covered_ref.mean()),
        cov_precision=float(covered_gen.sum() / len(gen_struct_fps)),
        amsd_recall=float(s_rec.mean()),
        amsd_precision=float(s_prec.mean()),
        amcd_recall=float(c_rec.mean()),
        amcd_precision=float(c_prec.mean()),
    )
    return out
