"""Batched FIRE on atom positions and cells: ASE's ``FIRE`` on ``FrechetCellFilter``, for many
crystals at once. Tensors only; no crystals, no files.

Layout (torch-sim's): N atoms over B crystals; ``batch`` (N,) is each atom's crystal index.
The optimiser's coordinates are the Fréchet cell filter's: atom positions in the undeformed
frame ``u = r F⁻ᵀ`` (N, 3) Å and the cell's scaled log-deformation ``ell = n · log F``
(B, 3, 3), where F is the deformation gradient from the reference cell (rows, Å) and n the
crystal's atom count (ASE's ``exp_cell_factor``). FIRE's scalars (dt, mixing a, steps since the
last uphill step) are per crystal, and the power v·f and the step-length cap are per-crystal
sums over its atom rows and its three cell rows: each crystal follows the path ASE's FIRE would
give it alone (up to floating-point order), whatever else is in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class FireParams:
    """ASE's FIRE defaults (``ase.optimize.FIRE``): time step dt (and its cap), the step-length
    cap ``maxstep`` (Å, over a crystal's whole step), and the mixing schedule."""

    dt: float = 0.1
    maxstep: float = 0.2
    dtmax: float = 1.0
    nmin: int = 5
    finc: float = 1.1
    fdec: float = 0.5
    astart: float = 0.1
    fa: float = 0.99


@dataclass
class FrechetState:
    """Optimiser state of B crystals (float64). ``ref_cell`` (B, 3, 3) rows is the cell the
    deformation is measured from; ``n_atoms`` (B,) float; velocities match the coordinates."""

    u: Tensor
    ell: Tensor
    ref_cell: Tensor
    batch: Tensor
    n_atoms: Tensor
    vel_u: Tensor
    vel_ell: Tensor
    dt: Tensor
    a: Tensor
    n_up: Tensor
    started: Tensor


def init_state(positions: Tensor, cells: Tensor, batch: Tensor, params: FireParams
               ) -> FrechetState:  # fmt: skip
    """State at rest with the current cells as reference (F = I): positions (N, 3) Å, cells
    (B, 3, 3) rows, batch (N,)."""
    b = cells.shape[0]
    n = torch.zeros(b, dtype=positions.dtype).index_add_(0, batch, torch.ones_like(batch,
                                                          dtype=positions.dtype))  # fmt: skip
    return FrechetState(positions.clone(), torch.zeros_like(cells), cells.clone(), batch, n,
                        torch.zeros_like(positions), torch.zeros_like(cells),
                        torch.full((b,), params.dt, dtype=positions.dtype),
                        torch.full((b,), params.astart, dtype=positions.dtype),
                        torch.zeros(b, dtype=torch.long),
                        torch.zeros(b, dtype=torch.bool))  # fmt: skip


def deformation(state: FrechetState) -> Tensor:
    """F = exp(ell / n), (B, 3, 3)."""
    return torch.linalg.matrix_exp(state.ell / state.n_atoms[:, None, None])


def geometry(state: FrechetState) -> tuple[Tensor, Tensor]:
    """(positions (N, 3) Å, cells (B, 3, 3) rows) of the state: cell = ref Fᵀ, r = u Fᵀ."""
    ft = deformation(state).transpose(1, 2)
    return torch.bmm(state.u[:, None, :], ft[state.batch])[:, 0], state.ref_cell @ ft


def frechet_adjoint(a: Tensor, g: Tensor) -> Tensor:
    """The adjoint of exp's Fréchet derivative at ``a`` applied to ``g`` (both (B, 3, 3)):
    ``out[μν] = Σ (d exp(a)/d a[μν]) ∘ g``, from the block identity
    ``exp([[aᵀ, g], [0, aᵀ]])[:3, 3:] = L_exp(aᵀ)[g]``."""
    b = a.shape[0]
    block = torch.zeros(b, 6, 6, dtype=a.dtype)
    at = a.transpose(1, 2)
    block[:, :3, :3], block[:, 3:, 3:], block[:, :3, 3:] = at, at, g
    return torch.linalg.matrix_exp(block)[:, :3, 3:]


def filter_forces(state: FrechetState, forces: Tensor, stress: Tensor, cells: Tensor
                  ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Generalised forces on (u, ell) from atom forces (N, 3) eV/Å and stresses (B, 3, 3)
    eV/Å³ (ASE's sign) at ``cells``, as ``FrechetCellFilter.get_forces`` gives them."""
    f = deformation(state)
    volume = torch.linalg.det(cells).abs()
    virial = -volume[:, None, None] * stress
    ucf = virial @ torch.linalg.inv(f.transpose(1, 2))
    log_f = state.ell / state.n_atoms[:, None, None]
    f_ell = frechet_adjoint(log_f, ucf) / state.n_atoms[:, None, None]
    f_u = torch.bmm(forces[:, None, :], f[state.batch])[:, 0]
    return f_u, f_ell


def max_force(state: FrechetState, f_u: Tensor, f_ell: Tensor) -> Tensor:
    """Largest row norm per crystal over its atom rows and three cell rows (B,): ASE's
    convergence measure."""
    rows = torch.linalg.norm(f_u, dim=1)
    out = torch.zeros_like(state.n_atoms).scatter_reduce_(0, state.batch, rows, "amax")
    return torch.maximum(out, torch.linalg.norm(f_ell, dim=2).amax(dim=1))


def _per_crystal(state: FrechetState, atom_term: Tensor, cell_term: Tensor) -> Tensor:
    """Σ over each crystal's atom rows (N, 3) and cell rows (B, 3, 3) → (B,)."""
    out = torch.zeros_like(state.n_atoms).index_add_(0, state.batch, atom_term.sum(dim=1))
    return out + cell_term.sum(dim=(1, 2))


def fire_step(state: FrechetState, f_u: Tensor, f_ell: Tensor, active: Tensor,
              params: FireParams) -> None:  # fmt: skip
    """One FIRE step in place for the crystals where ``active`` (B,) bool is set, from their
    generalised forces; the others do not move."""
    p = params
    started = state.started
    vf = _per_crystal(state, state.vel_u * f_u, state.vel_ell * f_ell)
    f2 = _per_crystal(state, f_u**2, f_ell**2)
    v2 = _per_crystal(state, state.vel_u**2, state.vel_ell**2)
    downhill = vf > 0
    mix = torch.where(downhill & started, state.a, torch.zeros_like(state.a))
    scale = torch.where(f2 > 0, torch.sqrt(v2) / torch.sqrt(f2).clamp_min(1e-300), 0.0)
    keep = torch.where(downhill | ~started, 1.0, 0.0)  # uphill: the velocity is zeroed
    grow = downhill & started & (state.n_up > p.nmin)
    dt = torch.where(grow, (state.dt * p.finc).clamp_max(p.dtmax), state.dt)
    a = torch.where(grow, state.a * p.fa, state.a)
    uphill = started & ~downhill
    dt = torch.where(uphill, dt * p.fdec, dt)
    a = torch.where(uphill, torch.full_like(a, p.astart), a)
    n_up = torch.where(uphill, 0, torch.where(downhill & started, state.n_up + 1, state.n_up))
    c_v, c_f = keep * (1 - mix), keep * mix * scale
    vel_u = c_v[state.batch, None] * state.vel_u + c_f[state.batch, None] * f_u
    vel_ell = c_v[:, None, None] * state.vel_ell + c_f[:, None, None] * f_ell
    vel_u = vel_u + dt[state.batch, None] * f_u
    vel_ell = vel_ell + dt[:, None, None] * f_ell
    dr_u, dr_ell = dt[state.batch, None] * vel_u, dt[:, None, None] * vel_ell
    norm = torch.sqrt(_per_crystal(state, dr_u**2, dr_ell**2))
    cap = torch.where(norm > p.maxstep, p.maxstep / norm.clamp_min(1e-300), 1.0)
    on, on_atoms = active, active[state.batch]
    state.u = torch.where(on_atoms[:, None], state.u + cap[state.batch, None] * dr_u, state.u)
    state.ell = torch.where(on[:, None, None], state.ell + cap[:, None, None] * dr_ell, state.ell)
    state.vel_u = torch.where(on_atoms[:, None], vel_u, state.vel_u)
    state.vel_ell = torch.where(on[:, None, None], vel_ell, state.vel_ell)
    state.dt, state.a = torch.where(on, dt, state.dt), torch.where(on, a, state.a)
    state.n_up = torch.where(on, n_up, state.n_up)
    state.started = state.started | on
