"""Reconstruction match rate and RMSE, as CDVAE's ``RecEval``.

A prediction matches when pymatgen ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``
finds a mapping onto the true crystal; its error is the first value of ``get_rms_dist`` (RMS
displacement normalised by (V / N)^(1/3)). Match rate = matched / all; RMSE = mean over
matched. As CDVAE, a prediction that is not valid (structure validity and SMACT composition
validity) is a non-match before matching is tried, and so is a missing prediction or a matcher
error. Deviation: CDVAE also counted a prediction as invalid when its CrystalNN fingerprint
could not be computed; that costly check is skipped here (``check_validity`` covers the rest).

Note: with ``check_validity`` a correctly reconstructed crystal whose composition fails the
SMACT test (some real test crystals do) counts as a non-match, as in CDVAE.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from structrepdiff.evaluate.result import count_reasons, exception_reason
from structrepdiff.evaluate.validity import composition_validity, structure_validity

RECON_MATCHER_KWARGS: dict[str, float] = {"stol": 0.5, "angle_tol": 10, "ltol": 0.3}


def reconstruction_matcher() -> StructureMatcher:
    """CDVAE's reconstruction matcher: StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)."""
    return StructureMatcher(**RECON_MATCHER_KWARGS)


@dataclass(frozen=True)
class MatchResult:
    """``matched``; ``rms`` (normalised RMS displacement, unitless) when matched; ``reason``
    when not. Unpacks as ``matched, rms, reason = result``."""

    matched: bool
    rms: float | None
    reason: str | None

    def __iter__(self):
        return iter((self.matched, self.rms, self.reason))


def reconstruction_match(
    pred: Structure | None,
    true: Structure | None,
    matcher: StructureMatcher | None = None,
    check_validity: bool = True,
) -> MatchResult:
    """Match one predicted crystal against the true one; never raises.

    ``matcher`` defaults to :func:`reconstruction_matcher` (pass one to reuse it). With
    ``check_validity`` an invalid prediction is a non-match whose reason starts "invalid".
    """
    if pred is None:
        return MatchResult(False, None, "no prediction")
    if true is None:
        return MatchResult(False, None, "no true structure")
    if check_validity:
        for check in (structure_validity(pred), composition_validity(pred)):
            if not check.value:
                return MatchResult(False, None, f"invalid prediction: {check.reason}")
    matcher = matcher or reconstruction_matcher()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rms = matcher.get_rms_dist(pred, true)
    except Exception as exc:  # pymatgen can fail on degenerate cells
        return MatchResult(False, None, exception_reason("matcher error", exc))
    if rms is None:
        return MatchResult(False, None, "no match")
    return MatchResult(True, float(rms[0]), None)


def reconstruction_metrics(results: Sequence[MatchResult]) -> dict[str, Any]:
    """Aggregate: match_rate (matched / all, in [0, 1]), rmse (mean rms over matched, NaN if
    none), n, n_matched and the count of each kind of non-match reason (two levels deep, e.g.
    "invalid prediction: not charge balanced")."""
    n = len(results)
    rms = [r.rms for r in results if r.matched and r.rms is not None]
    return {
        "match_rate": len(rms) / n if n else float("nan"),
        "rmse": float(np.mean(rms)) if rms else float("nan"),
        "n": n,
        "n_matched": len(rms),
        "reasons": count_reasons((r.reason for r in results), depth=2),
    }
