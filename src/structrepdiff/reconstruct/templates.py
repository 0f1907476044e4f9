"""Template starts: known crystals with the same stoichiometry pattern, placed in the target cell.

A target with species counts {Ga: 4, P: 4, Ca: 2} may start from any known crystal with counts
{4, 4, 2}: its fractional coordinates are put into the target's cell and its species are
renamed onto the target's (equal counts can be renamed several ways; each way is a candidate).
Candidates are ranked by how close the template's cell shape is to the target's, and the
caller ranks the best of them again by the descriptor loss at the start.

Templates must come from the training split (here: ``val``); results that use them are
reported apart from random starts, because they use knowledge of the training crystals.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def signature(numbers: np.ndarray) -> tuple[int, ...]:
    """Sorted species counts of one crystal, e.g. (2, 4, 4) for Ca2Ga4P4."""
    return tuple(sorted(np.unique(numbers, return_counts=True)[1].tolist()))


def shape_distance(lattice: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    """(T,) distance between one cell's shape (6,) and T cells (T, 6): lengths scaled to equal
    volume per cell (log ratios), plus angle differences in units of 60 degrees."""

    def shape(p: np.ndarray) -> np.ndarray:
        a = np.atleast_2d(p)
        rad = np.radians(a[:, 3:])
        c = np.cos(rad)
        vol = np.prod(a[:, :3], 1) * np.sqrt(
            np.clip(1 - (c**2).sum(1) + 2 * c.prod(1), 1e-12, None)
        )
        return np.concatenate([np.log(a[:, :3] / np.cbrt(vol)[:, None]), a[:, 3:] / 60.0], 1)

    return np.abs(shape(lattices) - shape(lattice)).sum(1)


def species_maps(target: np.ndarray, template: np.ndarray, limit: int) -> list[np.ndarray]:
    """Ways to rename the template's atoms onto the target's atom order.

    Both are (n,) atomic numbers with the same signature; the target is sorted by Z. Returns up
    to ``limit`` index arrays ``idx`` (n,) such that template atom idx[k] plays target atom k.
    """
    t_sp, t_cnt = np.unique(target, return_counts=True)
    u_sp, u_cnt = np.unique(template, return_counts=True)
    groups = sorted(set(t_cnt.tolist()))
    choices = [list(itertools.permutations(u_sp[u_cnt == c].tolist())) for c in groups]
    by_species = {z: np.flatnonzero(template == z) for z in u_sp.tolist()}
    out = []
    for combo in itertools.product(*choices):
        rename = {}
        for c, perm in zip(groups, combo, strict=True):
            rename.update(zip(t_sp[t_cnt == c].tolist(), perm, strict=True))
        out.append(np.concatenate([by_species[rename[z]] for z in t_sp.tolist()]))
        if len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class TemplateSet:
    """Known crystals: ids (T,), per-crystal atomic numbers and fractional coordinates, and
    lattice parameters (T, 6) in Å and degrees, all of Niggli-reduced cells."""

    ids: tuple[str, ...]
    numbers: tuple[np.ndarray, ...]
    frac: tuple[np.ndarray, ...]
    lattice: np.ndarray
    _by_sig: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_sig = defaultdict(list)
        for k, z in enumerate(self.numbers):
            by_sig[signature(z)].append(k)
        object.__setattr__(self, "_by_sig", {s: np.array(v) for s, v in by_sig.items()})

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_structures(cls, ids: Sequence[str], structures: Sequence) -> TemplateSet:
        """From pymatgen Structures (Niggli-reduced here)."""
        from structrepdiff.representation.encode import canonical

        red = [canonical(s) for s in structures]
        return cls(
            tuple(ids),
            tuple(np.array([site.specie.Z for site in s]) for s in red),
            tuple(np.asarray(s.frac_coords, dtype=np.float64) for s in red),
            np.array([s.lattice.parameters for s in red], dtype=np.float64).reshape(-1, 6),
        )

    def candidates(
        self,
        numbers: np.ndarray,
        lattice: np.ndarray,
        limit: int = 16,
        maps_per_template: int = 6,
        exclude: str | None = None,
    ) -> list[tuple[str, np.ndarray]]:
        """Starts for one target: (template id, fractional coordinates (n, 3) in target atom
        order), from the ``limit`` templates with the same signature and the closest cell shape.
        ``exclude`` drops a template id (the target itself, when it is in the set)."""
        pool = self._by_sig.get(signature(numbers))
        if pool is None:
            return []
        if exclude is not None:
            pool = np.array([k for k in pool if self.ids[k] != exclude], dtype=int)
        order = pool[np.argsort(shape_distance(lattice, self.lattice[pool]), kind="stable")]
        out = []
        for k in order[:limit].tolist():
            for idx in species_maps(np.asarray(numbers), self.numbers[k], maps_per_template):
                out.append((self.ids[k], self.frac[k][idx]))
        return out

    def save(self, path: str | os.PathLike) -> None:
        counts = np.array([len(z) for z in self.numbers])
        np.savez_compressed(
            path,
            ids=np.array(self.ids),
            counts=counts,
            numbers=np.concatenate(self.numbers),
            frac=np.concatenate(self.frac),
            lattice=self.lattice,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> TemplateSet:
        """Read a file written by `save`; any other file is a clear ValueError."""
        with np.load(Path(path), allow_pickle=False) as f:
            missing = {"ids", "counts", "numbers", "frac", "lattice"} - set(f.files)
            if missing:
                raise ValueError(f"{path} is not a template file (no {', '.join(sorted(missing))}"
                                 "); build one with `structrepdiff templates`")  # fmt: skip
            cuts = np.cumsum(f["counts"])[:-1]
            return cls(
                tuple(str(i) for i in f["ids"]),
                tuple(np.split(f["numbers"], cuts)),
                tuple(np.split(f["frac"], cuts)),
                f["lattice"],
            )
