"""Batched crystals, one flat layout: positions (N, 3), numbers (N,), cell (B, 3, 3), batch (N,)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class Crystals:
    """A batch of B periodic crystals with N atoms in total.

    Attributes:
        positions: (N, 3) Cartesian positions in Å (atoms may lie outside their cell).
        numbers: (N,) atomic numbers (int64).
        cell: (B, 3, 3) lattice vectors as rows, in Å.
        batch: (N,) index of the crystal each atom belongs to, sorted ascending (int64).
    """

    positions: Tensor
    numbers: Tensor
    cell: Tensor
    batch: Tensor

    def __post_init__(self) -> None:
        n = self.positions.shape[0]
        if self.positions.shape != (n, 3) or self.numbers.shape != (n,) or self.batch.shape != (n,):
            raise ValueError("positions must be (N, 3), numbers and batch (N,)")
        if self.cell.ndim != 3 or self.cell.shape[1:] != (3, 3):
            raise ValueError(f"cell must be (B, 3, 3), got {tuple(self.cell.shape)}")
        if n and bool((self.batch[1:] < self.batch[:-1]).any()):
            raise ValueError("batch must be sorted ascending")

    @property
    def n_crystals(self) -> int:
        return self.cell.shape[0]

    @property
    def n_atoms(self) -> Tensor:
        """(B,) atoms per crystal."""
        return torch.bincount(self.batch, minlength=self.n_crystals)

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None):
        """Copy with floating tensors cast to ``dtype`` and everything moved to ``device``."""
        return Crystals(
            self.positions.to(device=device, dtype=dtype),
            self.numbers.to(device=device),
            self.cell.to(device=device, dtype=dtype),
            self.batch.to(device=device),
        )

    @classmethod
    def from_arrays(
        cls,
        positions: Sequence[np.ndarray],
        numbers: Sequence[np.ndarray],
        cells: Sequence[np.ndarray],
        dtype: torch.dtype = torch.float64,
    ) -> Crystals:
        """Concatenate per-crystal positions (n_b, 3) Å, numbers (n_b,) and cells (3, 3) rows."""
        counts = [len(z) for z in numbers]
        if any(c == 0 for c in counts):
            raise ValueError("every crystal needs at least one atom")
        return cls(
            positions=torch.as_tensor(np.concatenate(positions), dtype=dtype).reshape(-1, 3),
            numbers=torch.as_tensor(np.concatenate(numbers), dtype=torch.long),
            cell=torch.as_tensor(np.stack(cells), dtype=dtype).reshape(-1, 3, 3),
            batch=torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)),
        )

    @classmethod
    def from_structures(cls, structures: Sequence, dtype: torch.dtype = torch.float64) -> Crystals:
        """From pymatgen Structures (ordered, one species per site)."""
        for s in structures:
            if not s.is_ordered:
                raise ValueError(f"disordered structure {s.formula} is not supported")
        return cls.from_arrays(
            [s.cart_coords for s in structures],
            [np.array(s.atomic_numbers) for s in structures],
            [s.lattice.matrix for s in structures],
            dtype,
        )

    @classmethod
    def from_atoms(cls, atoms_list: Sequence, dtype: torch.dtype = torch.float64) -> Crystals:
        """From ase.Atoms objects (fully periodic)."""
        for a in atoms_list:
            if not all(a.pbc):
                raise ValueError("only fully periodic ase.Atoms are supported")
        return cls.from_arrays(
            [a.positions for a in atoms_list],
            [a.numbers for a in atoms_list],
            [np.asarray(a.cell) for a in atoms_list],
            dtype,
        )

    def split_numpy(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per crystal (positions (n, 3), numbers (n,), cell (3, 3)) as float64 numpy arrays."""
        counts = self.n_atoms.tolist()
        pos = torch.split(self.positions.detach().cpu().double(), counts)
        num = torch.split(self.numbers.detach().cpu(), counts)
        cell = self.cell.detach().cpu().double()
        return [(p.numpy(), z.numpy(), c.numpy()) for p, z, c in zip(pos, num, cell, strict=True)]

    def to_structures(self) -> list:
        """As pymatgen Structures (Cartesian coordinates kept, not wrapped)."""
        from pymatgen.core import Lattice, Structure

        return [
            Structure(Lattice(c), z.tolist(), p, coords_are_cartesian=True)
            for p, z, c in self.split_numpy()
        ]

    def to_atoms(self) -> list:
        """As fully periodic ase.Atoms."""
        from ase import Atoms

        return [Atoms(numbers=z, positions=p, cell=c, pbc=True) for p, z, c in self.split_numpy()]
