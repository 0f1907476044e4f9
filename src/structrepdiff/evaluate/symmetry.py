"""Space groups of crystals (pymatgen SpacegroupAnalyzer, symprec 0.1 Å): P1 fraction and
histogram. A failure is a reason, never an exception."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from structrepdiff.data.io import nonfinite_reason
from structrepdiff.evaluate.result import Result, count_reasons, exception_reason, fail

SYMPREC = 0.1  # Å
ANGLE_TOLERANCE = 5.0  # degrees (pymatgen's default)


def space_group(
    structure: Structure | None, symprec: float = SYMPREC, angle_tolerance: float = ANGLE_TOLERANCE
) -> Result[tuple[int, str]]:
    """(International number, Hermann-Mauguin symbol) of the space group, or a reason."""
    if structure is None:
        return fail("no structure")
    if len(structure) == 0:
        return fail("no atoms")
    bad = nonfinite_reason(structure)
    if bad:  # spglib segfaults on NaN
        return fail(bad)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sga = SpacegroupAnalyzer(structure, symprec=symprec, angle_tolerance=angle_tolerance)
            return Result((int(sga.get_space_group_number()), str(sga.get_space_group_symbol())))
    except Exception as exc:  # spglib fails on degenerate cells
        return fail(exception_reason("symmetry analysis failed", exc))


def space_group_stats(
    structures: Sequence[Structure | None],
    symprec: float = SYMPREC,
    angle_tolerance: float = ANGLE_TOLERANCE,
) -> dict[str, Any]:
    """P1 fraction and space-group histogram over the structures that could be analysed.

    Returns p1_fraction (P1 count / n_analysed; NaN if none), histogram {number: count},
    n, n_analysed, n_failed, reasons {kind: count} and numbers (per input; None on failure).
    """
    results = [space_group(s, symprec, angle_tolerance) for s in structures]
    numbers = [r.value[0] if r.ok and r.value else None for r in results]
    analysed = [k for k in numbers if k is not None]
    hist = Counter(analysed)
    return {
        "p1_fraction": hist.get(1, 0) / len(analysed) if analysed else float("nan"),
        "histogram": dict(sorted(hist.items())),
        "n": len(structures),
        "n_analysed": len(analysed),
        "n_failed": len(structures) - len(analysed),
        "reasons": count_reasons(r.reason for r in results),
        "numbers": numbers,
    }


def space_group_chi2(generated: dict, reference: dict) -> dict[str, float]:
    """χ² = Σ_g (p_gen(g) − p_ref(g))² / p_ref(g) over the reference's groups, and the total
    variation ½ Σ_g |p_gen − p_ref| over all groups, of two {group: count} histograms (keys
    int or str). NaN when either is empty."""
    gen = {int(k): v for k, v in generated.items()}
    ref = {int(k): v for k, v in reference.items()}
    ng, nr = sum(gen.values()), sum(ref.values())
    if not ng or not nr:
        return {"chi2": float("nan"), "tv": float("nan")}
    chi2 = sum((gen.get(g, 0) / ng - n / nr) ** 2 / (n / nr) for g, n in ref.items())
    keys = set(gen) | set(ref)
    tv = 0.5 * sum(abs(gen.get(g, 0) / ng - ref.get(g, 0) / nr) for g in keys)
    return {"chi2": float(chi2), "tv": float(tv)}
