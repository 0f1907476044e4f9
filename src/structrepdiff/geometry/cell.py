"""Lattice parameters <-> cell matrices (lattice vectors as rows), batched and differentiable."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def params_to_matrix(params: Tensor) -> Tensor:
    """Cell matrices from lattice parameters.

    Args:
        params: (B, 6) a, b, c in Å and α, β, γ in degrees.
    Returns:
        (B, 3, 3) cells with rows a, b, c; a along x, b in the xy plane (ASE's convention).
        Parameters that describe no cell give NaN rows (check with `lattice_problem`).
    """
    a, b, c = params[:, 0], params[:, 1], params[:, 2]
    alpha, beta, gamma = torch.deg2rad(params[:, 3:6]).unbind(-1)
    ca, cb, cg = torch.cos(alpha), torch.cos(beta), torch.cos(gamma)
    sg = torch.sin(gamma)
    zero = torch.zeros_like(a)
    cy = (ca - cb * cg) / sg
    cz = torch.sqrt(1.0 - cb**2 - cy**2)
    row_a = torch.stack([a, zero, zero], -1)
    row_b = torch.stack([b * cg, b * sg, zero], -1)
    row_c = torch.stack([c * cb, c * cy, c * cz], -1)
    return torch.stack([row_a, row_b, row_c], dim=1)


def matrix_to_params(cell: Tensor) -> Tensor:
    """Lattice parameters (B, 6): a, b, c in Å, α, β, γ in degrees, from (B, 3, 3) row cells."""
    lengths = cell.norm(dim=-1)
    va, vb, vc = cell.unbind(1)

    def angle(u: Tensor, v: Tensor, nu: Tensor, nv: Tensor) -> Tensor:
        cos = ((u * v).sum(-1) / (nu * nv)).clamp(-1.0, 1.0)
        return torch.rad2deg(torch.arccos(cos))

    la, lb, lc = lengths.unbind(-1)
    alpha = angle(vb, vc, lb, lc)
    beta = angle(va, vc, la, lc)
    gamma = angle(va, vb, la, lb)
    return torch.stack([la, lb, lc, alpha, beta, gamma], -1)


def lattice_problem(params: Tensor) -> list[str | None]:
    """Per row of (B, 6) lattice parameters: None if they describe a cell, else the reason.

    A cell exists iff lengths > 0, angles in (0, 180) degrees and the metric determinant
    1 - cos²α - cos²β - cos²γ + 2 cosα cosβ cosγ is positive.
    """
    out: list[str | None] = []
    for a, b, c, al, be, ga in params.detach().to(torch.float64).tolist():
        if not all(math.isfinite(x) for x in (a, b, c, al, be, ga)):
            out.append("non-finite lattice parameter")
            continue
        cos = [math.cos(math.radians(x)) for x in (al, be, ga)]
        gram_det = 1 - sum(x * x for x in cos) + 2 * cos[0] * cos[1] * cos[2]
        if min(a, b, c) <= 0:
            out.append(f"non-positive lattice length ({a:.3g}, {b:.3g}, {c:.3g})")
        elif not all(0 < x < 180 for x in (al, be, ga)):
            out.append(f"lattice angle outside (0, 180) degrees ({al:.3g}, {be:.3g}, {ga:.3g})")
        elif gram_det <= 1e-8:
            out.append(f"angles ({al:.4g}, {be:.4g}, {ga:.4g}) give no valid cell (zero volume)")
        else:
            out.append(None)
    return out
