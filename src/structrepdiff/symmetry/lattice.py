"""The conventional cell of a crystal system as a differentiable map of its free parameters,
and a pull toward a target's (Niggli-reduced) lattice block.

Free vector θ (6,) per crystal: p = base + A θ with p = (ln a, ln b, ln c, α, β, γ), angles in
radians. A ties the parameters the system ties (a = b in tetragonal cells, …); columns of A
beyond the system's count are zero, so those entries of θ get no gradient and never move.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from structrepdiff.geometry.cell import matrix_to_params, params_to_matrix
from structrepdiff.symmetry.groups import crystal_system

_R90, _R120 = math.pi / 2, 2 * math.pi / 3
# system -> (columns of A as lists of tied p-indices, fixed angles {p-index: radians})
_TIES = {
    "triclinic": ([[0], [1], [2], [3], [4], [5]], {}),
    "monoclinic": ([[0], [1], [2], [4]], {3: _R90, 5: _R90}),
    "orthorhombic": ([[0], [1], [2]], {3: _R90, 4: _R90, 5: _R90}),
    "tetragonal": ([[0, 1], [2]], {3: _R90, 4: _R90, 5: _R90}),
    "trigonal": ([[0, 1], [2]], {3: _R90, 4: _R90, 5: _R120}),
    "hexagonal": ([[0, 1], [2]], {3: _R90, 4: _R90, 5: _R120}),
    "cubic": ([[0, 1, 2]], {3: _R90, 4: _R90, 5: _R90}),
}


def tie_matrix(sg: int) -> tuple[np.ndarray, np.ndarray]:
    """(A (6, 6), base (6,)) of the crystal system of ``sg``."""
    cols, fixed = _TIES[crystal_system(sg)]
    A, base = np.zeros((6, 6)), np.zeros(6)
    for c, rows in enumerate(cols):
        A[rows, c] = 1.0
    for k, v in fixed.items():
        base[k] = v
    return A, base


def free_from_params(sg: int, params: np.ndarray) -> np.ndarray:
    """θ (6,) closest to conventional lattice parameters (a, b, c Å, α, β, γ deg) in the
    system of ``sg`` (tied lengths averaged in log space, fixed angles ignored)."""
    A, base = tie_matrix(sg)
    p = np.concatenate([np.log(params[:3]), np.radians(params[3:])])
    theta, *_ = np.linalg.lstsq(A, p - base, rcond=None)
    return theta


def conventional_params(theta: Tensor, A: Tensor, base: Tensor) -> Tensor:
    """(B, 6) a, b, c Å, α, β, γ deg from θ (B, 6), A (B, 6, 6), base (B, 6)."""
    p = base + torch.einsum("bij,bj->bi", A, theta)
    return torch.cat([p[:, :3].exp(), torch.rad2deg(p[:, 3:])], dim=1)


def conventional_cell(theta: Tensor, A: Tensor, base: Tensor) -> Tensor:
    """(B, 3, 3) conventional cells (rows) of θ (B, 6)."""
    return params_to_matrix(conventional_params(theta, A, base))


@torch.no_grad()
def niggli_maps(cell: Tensor) -> Tensor:
    """(B, 3, 3) integer M with M @ cell_b the Niggli-reduced cell of cell_b (B, 3, 3)."""
    from pymatgen.core import Lattice

    out = []
    for c in cell.detach().double().cpu().numpy():
        try:
            red = Lattice(c).get_niggli_reduced_lattice().matrix
            out.append(np.round(red @ np.linalg.inv(c)))
        except (ValueError, np.linalg.LinAlgError):  # a degenerate cell: keep its basis
            out.append(np.eye(3))
    return torch.as_tensor(np.array(out), dtype=cell.dtype, device=cell.device)


def lattice_loss(reduced: Tensor, target: Tensor) -> Tensor:
    """(B,) Σ |ln(len / len_t)| + Σ |angle - angle_t| (radians) between reduced cells
    (B, 3, 3) (``niggli_maps(cell) @ cell``) and target lattice parameters (B, 6) Å/deg."""
    p = matrix_to_params(reduced)
    d_len = (p[:, :3] / target[:, :3]).log().abs().sum(1)
    d_ang = torch.deg2rad(p[:, 3:] - target[:, 3:]).abs().sum(1)
    return d_len + d_ang


def _unimodular() -> np.ndarray:
    """(K, 3, 3) integer matrices with entries in {-1, 0, 1} and determinant +1."""
    if not hasattr(_unimodular, "cache"):
        import itertools

        m = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=float).reshape(-1, 3, 3)
        _unimodular.cache = m[np.isclose(np.linalg.det(m), 1.0)]
    return _unimodular.cache


def lattice_candidates(sg: int, target: np.ndarray, k: int = 6,
                       tol: float = 0.05) -> list[np.ndarray]:  # fmt: skip
    """Up to ``k`` conventional cells (a, b, c Å, α, β, γ deg) of ``sg``'s crystal system for
    the lattice of ``target`` (6,): conv = T⁻¹ U L_target over small unimodular U, ranked by
    how far they are from the system's form (residual of the tied/fixed parameters, ln-length
    and radian units) and projected onto it; of those within ``tol`` of the best, the
    shortest (sum of lengths) come first (axis choices differ, e.g. the six orthorhombic
    orientations)."""
    from structrepdiff.symmetry.groups import centering_matrix

    A, base = tie_matrix(sg)
    cell = params_to_matrix(torch.as_tensor(np.asarray(target, float))[None])[0].numpy()
    conv = np.linalg.inv(centering_matrix(sg)) @ _unimodular() @ cell  # (K, 3, 3)
    lengths = np.linalg.norm(conv, axis=2)
    cosines = [np.einsum("ki,ki->k", conv[:, i], conv[:, j]) / (lengths[:, i] * lengths[:, j])
               for i, j in ((1, 2), (0, 2), (0, 1))]  # fmt: skip
    p = np.concatenate([np.log(lengths), np.arccos(np.clip(np.stack(cosines, 1), -1, 1))], 1)
    theta = np.linalg.lstsq(A, (p - base).T, rcond=None)[0].T  # (K, 6)
    fit = theta @ A.T + base
    dev = np.abs(p - fit).sum(1)
    ok = np.nonzero(dev <= dev.min() + tol)[0]
    out, seen = [], set()
    for i in ok[np.argsort(np.exp(fit[ok, :3]).sum(1), kind="stable")]:  # shortest cells first
        if len(out) >= k:
            break
        params = np.concatenate([np.exp(fit[i, :3]), np.degrees(fit[i, 3:])])
        key = tuple(np.round(params, 2))
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out
