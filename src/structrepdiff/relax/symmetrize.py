"""Symmetrised forces and stresses for many crystals at once (ASE's ``FixSymmetry``, batched).

Per crystal, once: spglib's operations at ``symprec`` and the atom each one maps every atom to
(ASE's ``prep_symmetry``), after the crystal is first made exactly symmetric at that tolerance
(ASE's ``refine_symmetry``), so a slightly rattled crystal relaxes inside its group. Per step:
one gather and one ``index_add_`` over all (crystal, operation, atom) triples of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class CrystalOps:
    """One crystal's operations: fractional rotations (k, 3, 3) and atom maps (k, n), atom i
    going to ``maps[op, i]``."""

    rotations: np.ndarray
    maps: np.ndarray

    @staticmethod
    def identity(n_atoms: int) -> CrystalOps:
        return CrystalOps(np.eye(3)[None], np.arange(n_atoms)[None])

    @property
    def order(self) -> int:
        return len(self.rotations)


def refine_and_ops(atoms, symprec: float) -> tuple[CrystalOps, str]:
    """Make ``atoms`` (ASE) exactly symmetric in place at ``symprec`` and return its operations,
    with "" or the reason the identity is used instead (spglib found nothing usable)."""
    from ase.spacegroup.symmetrize import prep_symmetry, refine_symmetry

    n, cell, positions = len(atoms), atoms.get_cell().copy(), atoms.get_positions().copy()
    try:
        refine_symmetry(atoms, symprec=symprec)
        rot, _, maps = prep_symmetry(atoms, symprec=symprec)
        maps = np.asarray(maps)
        if any(sorted(m) != list(range(n)) for m in maps):
            raise ValueError("operations do not permute the atoms")
    except Exception as exc:  # spglib's failures differ by version: any is a reason
        atoms.set_cell(cell)
        atoms.set_positions(positions)
        return CrystalOps.identity(n), f"no symmetry kept ({type(exc).__name__}: {exc})"
    return CrystalOps(np.asarray(rot, dtype=float), maps), ""


@dataclass(frozen=True)
class BatchOps:
    """Operations of B crystals, flat: ``rot`` (K, 3, 3), ``op_crystal`` (K,), ``order``
    (B,) float, and per (operation, atom) triple ``src``, ``dst`` (M,) global atom indices and
    ``op`` (M,)."""

    rot: Tensor
    op_crystal: Tensor
    order: Tensor
    src: Tensor
    dst: Tensor
    op: Tensor


def stack_ops(ops: list[CrystalOps], dtype=torch.float64) -> BatchOps:
    """Flatten per-crystal operations in batch order (atoms numbered crystal after crystal)."""
    rot, op_crystal, src, dst, op = [], [], [], [], []
    atom0 = k0 = 0
    for b, c in enumerate(ops):
        n = c.maps.shape[1]
        rot.append(c.rotations)
        op_crystal.append(np.full(c.order, b))
        src.append(np.tile(np.arange(n), c.order) + atom0)
        dst.append(c.maps.reshape(-1) + atom0)
        op.append(np.repeat(np.arange(c.order), n) + k0)
        atom0, k0 = atom0 + n, k0 + c.order
    cat = np.concatenate
    return BatchOps(torch.as_tensor(cat(rot), dtype=dtype),
                    torch.as_tensor(cat(op_crystal)),
                    torch.as_tensor([float(c.order) for c in ops], dtype=dtype),
                    torch.as_tensor(cat(src)), torch.as_tensor(cat(dst)),
                    torch.as_tensor(cat(op)))  # fmt: skip


def symmetrize_forces(forces: Tensor, cells: Tensor, batch: Tensor, ops: BatchOps) -> Tensor:
    """Forces (N, 3) averaged over each crystal's group: fractional forces rotated and moved to
    the image atom, back to Cartesian (``ase.spacegroup.symmetrize.symmetrize_rank1``)."""
    inv = torch.linalg.inv(cells)
    scaled = torch.bmm(forces[:, None, :], inv[batch])[:, 0]
    moved = torch.bmm(scaled[ops.src, None, :], ops.rot[ops.op].transpose(1, 2))[:, 0]
    out = torch.zeros_like(forces).index_add_(0, ops.dst, moved)
    out = out / ops.order[batch, None]
    return torch.bmm(out[:, None, :], cells[batch])[:, 0]


def symmetrize_stress(stress: Tensor, cells: Tensor, ops: BatchOps) -> Tensor:
    """Stresses (B, 3, 3) averaged over each crystal's group (``symmetrize_rank2``)."""
    scaled = cells @ stress @ cells.transpose(1, 2)
    r = ops.rot
    moved = r.transpose(1, 2) @ scaled[ops.op_crystal] @ r
    out = torch.zeros_like(stress).index_add_(0, ops.op_crystal, moved)
    out = out / ops.order[:, None, None]
    inv = torch.linalg.inv(cells)
    return inv @ out @ inv.transpose(1, 2)
