"""Encode crystals into the structure-level vector R (docs/method.md)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from structrepdiff.descriptor.config import EADConfig
from structrepdiff.descriptor.ead import AtomDescriptors, compute_ead
from structrepdiff.geometry.cell import matrix_to_params
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.representation.layout import Layout


@dataclass(frozen=True)
class Representation:
    """Everything that fixes the meaning of R: descriptor settings, vocabulary and N_max."""

    ead: EADConfig
    atomic_numbers: tuple[int, ...]
    n_max: int
    canonicalize: bool = True
    _index: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if list(self.atomic_numbers) != sorted(set(self.atomic_numbers)):
            raise ValueError("atomic_numbers must be unique and in periodic-table order")
        object.__setattr__(self, "_index", {z: k for k, z in enumerate(self.atomic_numbers)})

    @property
    def layout(self) -> Layout:
        return Layout(n_ead=self.ead.n_features, n_elements=len(self.atomic_numbers))

    def element_index(self, z: int) -> int | None:
        """Column of element ``z`` in the composition block, None if outside the vocabulary."""
        return self._index.get(z)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ead": self.ead.to_dict(),
            "atomic_numbers": list(self.atomic_numbers),
            "n_max": self.n_max,
            "canonicalize": self.canonicalize,
            "layout": self.layout.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Representation:
        rep = cls(
            EADConfig.from_dict(d["ead"]),
            tuple(d["atomic_numbers"]),
            int(d["n_max"]),
            bool(d.get("canonicalize", True)),
        )
        if "layout" in d and Layout.from_dict(d["layout"]) != rep.layout:
            raise ValueError("stored layout does not match the descriptor settings")
        return rep


def canonical(structure):
    """The Niggli-reduced cell of a pymatgen Structure (as CDVAE does for these datasets)."""
    return structure.get_reduced_structure(reduction_algo="niggli")


def _composition(crystals: Crystals, rep: Representation) -> torch.Tensor:
    """(B, V) element fractions over the vocabulary."""
    cols = torch.tensor([rep.element_index(int(z)) for z in crystals.numbers.tolist()])
    counts = torch.zeros(crystals.n_crystals, len(rep.atomic_numbers), dtype=crystals.dtype)
    counts.index_put_(
        (crystals.batch.cpu(), cols), torch.ones_like(cols, dtype=crystals.dtype), accumulate=True
    )
    return counts / crystals.n_atoms[:, None].cpu().to(crystals.dtype)


def pool(atoms: AtomDescriptors, batch: Tensor, n_crystals: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-crystal EAD_max (B, F), EAD_min (B, F) and d_min (B,) from per-atom descriptors.

    Differentiable: gradients reach the atom that holds each maximum or minimum.
    """
    B, F = n_crystals, atoms.ead.shape[1]
    idx = batch[:, None].expand(-1, F)
    ead_max = atoms.ead.new_zeros(B, F).scatter_reduce(
        0, idx, atoms.ead, "amax", include_self=False
    )
    ead_min = atoms.ead.new_zeros(B, F).scatter_reduce(
        0, idx, atoms.ead, "amin", include_self=False
    )
    d_min = atoms.nearest.new_full((B,), np.inf).scatter_reduce(0, batch, atoms.nearest, "amin")
    return ead_max, ead_min, d_min


def encode_crystals(crystals: Crystals, rep: Representation) -> torch.Tensor:
    """(B, D) R of a batch, in the crystals' dtype; differentiable in positions and cell.

    The lattice block is taken from ``crystals.cell`` as given (canonicalise first).
    """
    bad = [z for z in set(crystals.numbers.tolist()) if rep.element_index(z) is None]
    if bad:
        raise ValueError(f"elements {sorted(bad)} are outside the vocabulary")
    ead_max, ead_min, d_min = pool(
        compute_ead(crystals, rep.ead), crystals.batch, crystals.n_crystals
    )
    n_frac = crystals.n_atoms.to(crystals.dtype) / rep.n_max
    lattice = matrix_to_params(crystals.cell)
    comp = _composition(crystals, rep).to(crystals.positions.device)
    return torch.cat([ead_max, ead_min, d_min[:, None], comp, n_frac[:, None], lattice], dim=1)


def encode_batch(
    structures: Sequence,
    rep: Representation,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """R (b, D) float64 for one batch of pymatgen Structures (canonicalised first), with the
    EAD computed on ``device``."""
    if rep.canonicalize:
        structures = [canonical(s) for s in structures]
    crystals = Crystals.from_structures(structures, dtype=dtype).to(device=device)
    with torch.no_grad():
        R = encode_crystals(crystals, rep)
    return R.double().cpu().numpy()


def iter_batches(
    structures: Sequence,
    rep: Representation,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Iterator[np.ndarray]:
    """Yield R (b, D) as float64 numpy, ``batch_size`` structures at a time."""
    for start in range(0, len(structures), batch_size):
        yield encode_batch(structures[start : start + batch_size], rep, dtype, device)


def encode_structures(
    structures: Sequence,
    rep: Representation,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """R (n, D) float64 for a list of pymatgen Structures (EAD on ``device``)."""
    parts = list(iter_batches(structures, rep, batch_size, dtype, device))
    return np.concatenate(parts) if parts else np.zeros((0, rep.layout.dim))
