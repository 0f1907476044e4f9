"""Decode R vectors into element counts, lattice and the EAD reconstruction target."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from structrepdiff.geometry.cell import lattice_problem
from structrepdiff.representation.encode import Representation


@dataclass(frozen=True)
class Decoded:
    """One decoded vector. ``reason`` is None when usable; otherwise why it was rejected.

    numbers: (N,) atomic numbers sorted ascending; lattice: (6,) a, b, c Å, α, β, γ degrees;
    ead_max, ead_min: (F,) target blocks; d_min: target minimum distance in Å.
    """

    numbers: np.ndarray | None
    lattice: np.ndarray
    ead_max: np.ndarray
    ead_min: np.ndarray
    d_min: float
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def largest_remainder(fractions: np.ndarray, n: int) -> np.ndarray | None:
    """Integer counts summing to n from (V,) fractions (Hamilton's method over the top-n).

    Negative fractions count as zero; only the n largest may receive atoms. None if no
    fraction is positive.
    """
    p = np.clip(np.nan_to_num(fractions, nan=0.0), 0.0, None)
    if p.sum() <= 0:
        return None
    keep = np.argsort(-p, kind="stable")[:n]
    q = np.zeros_like(p)
    q[keep] = p[keep] / p[keep].sum() * n
    counts = np.floor(q).astype(np.int64)
    short = n - int(counts.sum())
    order = np.argsort(-(q - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def _decode_row(row: np.ndarray, rep: Representation, lattice_reason: str | None) -> Decoded:
    sl = rep.layout.slices
    lattice = row[sl["lattice"]]
    out = {
        "lattice": lattice,
        "ead_max": row[sl["ead_max"]],
        "ead_min": row[sl["ead_min"]],
        "d_min": float(row[sl["d_min"]][0]),
        "numbers": None,
    }
    if not np.isfinite(row).all():
        bad = [k for k, s in sl.items() if not np.isfinite(row[s]).all()]
        return Decoded(**out, reason=f"non-finite values in {', '.join(bad)}")
    n_raw = float(row[sl["n_atoms"]][0]) * rep.n_max
    if n_raw < 0.5:
        return Decoded(**out, reason=f"zero atoms (N/N_max·N_max = {n_raw:.3g})")
    if round(n_raw) > rep.n_max:
        return Decoded(**out, reason=f"too many atoms: {n_raw:.4g} > N_max = {rep.n_max}")
    counts = largest_remainder(row[sl["composition"]], round(n_raw))
    if counts is None:
        return Decoded(**out, reason="empty composition (no positive element fraction)")
    if lattice_reason is not None:
        return Decoded(**out, reason=lattice_reason)
    out["numbers"] = np.repeat(np.asarray(rep.atomic_numbers), counts)
    return Decoded(**out)


def decode(R: np.ndarray, rep: Representation) -> list[Decoded]:
    """Decode unscaled R (n, D) row by row; rejected rows carry a reason, nothing raises."""
    R = np.atleast_2d(np.asarray(R, dtype=np.float64))
    if R.shape[1] != rep.layout.dim:
        raise ValueError(f"R has {R.shape[1]} columns, the representation needs {rep.layout.dim}")
    reasons = lattice_problem(torch.from_numpy(R[:, rep.layout.slices["lattice"]]))
    return [_decode_row(row, rep, why) for row, why in zip(R, reasons, strict=True)]
