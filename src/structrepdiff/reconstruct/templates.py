"""Template starts: known crystals with the same stoichiometry pattern, placed in the target cell.

A target with species counts {Ga: 4, P: 4, Ca: 2} may start from any known crystal with counts
{4, 4, 2}: its fractional coordinates are put into the target's cell and its species are
renamed onto the target's (equal counts can be renamed several ways; each way is a candidate,
the electronegativity-ordered pairing first). Templates are visited closest cell shape first,
starts that repeat an earlier geometry are dropped, and the caller ranks what remains by the
descriptor loss at the start. Trying every renaming matters: before it, a fifth of the Perov-5
crystals that did not converge had five species of count one and only 6 of their 120
renamings were tried.

Templates must come from the training split (here: ``val``); results that use them are
reported apart from random starts, because they use knowledge of the training crystals.
"""

from __future__ import annotations

import functools
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


@functools.cache
def electronegativity(z: int) -> float:
    """Pauling electronegativity of element ``z`` (0 where pymatgen has none, e.g. noble gases)."""
    from pymatgen.core import Element

    x = Element.from_Z(z).X
    return 0.0 if x != x else float(x)  # NaN -> 0


def _by_electronegativity(species: np.ndarray) -> list[int]:
    return sorted(species.tolist(), key=lambda z: (electronegativity(z), z))


def species_maps(target: np.ndarray, template: np.ndarray, limit: int) -> list[np.ndarray]:
    """Ways to rename the template's atoms onto the target's atom order.

    Both are (n,) atomic numbers with the same signature; the target is sorted by Z. Returns up
    to ``limit`` index arrays ``idx`` (n,) such that template atom idx[k] plays target atom k.
    Within each group of equal counts the first map pairs species in order of
    electronegativity (the most electropositive target species takes the most electropositive
    template species' sites), and the other permutations follow in lexicographic order from it.
    """
    t_sp, t_cnt = np.unique(target, return_counts=True)
    u_sp, u_cnt = np.unique(template, return_counts=True)
    groups = sorted(set(t_cnt.tolist()))
    t_order = [_by_electronegativity(t_sp[t_cnt == c]) for c in groups]
    choices = [list(itertools.permutations(_by_electronegativity(u_sp[u_cnt == c])))
               for c in groups]  # fmt: skip
    by_species = {z: np.flatnonzero(template == z) for z in u_sp.tolist()}
    out = []
    for combo in itertools.product(*choices):
        rename = {}
        for t_zs, perm in zip(t_order, combo, strict=True):
            rename.update(zip(t_zs, perm, strict=True))
        out.append(np.concatenate([by_species[rename[z]] for z in t_sp.tolist()]))
        if len(out) >= limit:
            break
    return out


def _geometry_key(frac: np.ndarray, bins: int = 20) -> bytes:
    """Starts that agree to within 1/bins of the cell in every coordinate share a key."""
    return (np.round(np.mod(frac, 1.0) * bins).astype(np.int64) % bins).tobytes()


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
        limit: int = 256,
        maps_per_template: int = 24,
        exclude: str | None = None,
        budget: int = 256,
    ) -> list[tuple[str, np.ndarray]]:
        """Starts for one target: (template id, fractional coordinates (n, 3) in target atom
        order), from up to ``limit`` templates with the same signature, closest cell shape
        first, each with up to ``maps_per_template`` species maps. Starts whose geometry
        repeats an earlier one (to 1/20 of the cell) are dropped, and at most ``budget`` are
        returned. ``exclude`` drops a template id (the target itself, when it is in the set)."""
        pool = self._by_sig.get(signature(numbers))
        if pool is None:
            return []
        if exclude is not None:
            pool = np.array([k for k in pool if self.ids[k] != exclude], dtype=int)
        order = pool[np.argsort(shape_distance(lattice, self.lattice[pool]), kind="stable")]
        out, seen = [], set()
        for k in order[:limit].tolist():
            for idx in species_maps(np.asarray(numbers), self.numbers[k], maps_per_template):
                frac = self.frac[k][idx]
                key = _geometry_key(frac)
                if key not in seen:
                    seen.add(key)
                    out.append((self.ids[k], frac))
                if len(out) >= budget:
                    return out
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


def cached_templates_path(dataset: str, split: str, data_dir: str | None = None,
                          cache_dir: str | os.PathLike | None = None) -> Path:  # fmt: skip
    """The template file of one dataset split, built once and cached under ``cache_dir``
    (default `default_cache_dir`) keyed by the split file's sha256; returns its path."""
    from structrepdiff.data.atomic import atomic_write
    from structrepdiff.data.io import load_split, split_path
    from structrepdiff.data.paths import default_cache_dir, file_sha256

    source = split_path(data_dir, dataset, split)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / "templates" / f"{dataset}_{split}_{file_sha256(source)[:16]}.npz"
    if not path.is_file():
        loaded = load_split(dataset, split, data_dir)
        ts = TemplateSet.from_structures(loaded.ids, loaded.structures)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, ts.save, force=True, suffix=".npz")
    return path


def cached_templates(dataset: str, split: str, data_dir: str | None = None,
                     cache_dir: str | os.PathLike | None = None) -> TemplateSet:  # fmt: skip
    """`cached_templates_path`, loaded."""
    return TemplateSet.load(cached_templates_path(dataset, split, data_dir, cache_dir))


def training_split(dataset: str, data_dir: str | None = None) -> str:
    """ "train" where the dataset has it here, else "val" (the split our models train on)."""
    from structrepdiff.data.io import split_path

    try:
        split_path(data_dir, dataset, "train")
    except FileNotFoundError:
        return "val"
    return "train"


def auto_templates(dataset: str | None, split: str | None = None, data_dir: str | None = None,
                   cache_dir: str | os.PathLike | None = None, symmetric: bool = False,
                   pack: dict | None = None, use_data: bool = False
                   ) -> tuple[Path | None, str]:  # fmt: skip
    """(template file of ``dataset``'s training split, what was used) — or (None, why not):
    then starts are random. The model's own template pack (``pack``, `template_pack`) comes
    first, then the pack of the bundled model of ``dataset`` when it holds ``split``, then the
    data directory, built once and cached; ``use_data`` asks for the data directory alone.
    With ``symmetric`` the file is the split on Wyckoff parameters (`cached_description_path`),
    the starts of reconstruction inside a group."""
    from structrepdiff.reconstruct.template_pack import package_pack, unpack_templates

    kind = " on Wyckoff parameters" if symmetric else ""
    for p in () if use_data else (pack, package_pack(dataset, split)):
        path = None if p is None else unpack_templates(p, symmetric, cache_dir)
        if path is not None:
            return path, f"{p['dataset']}/{p['split']}{kind}, bundled with the model"
    if not dataset:
        return None, "random starts: the dataset is not known"
    try:
        split = split or training_split(dataset, data_dir)
        if symmetric:
            from structrepdiff.symmetry.analyze import cached_description_path

            path = cached_description_path(dataset, split, data_dir, cache_dir)
            return path, f"{dataset}/{split}{kind}"
        return cached_templates_path(dataset, split, data_dir, cache_dir), f"{dataset}/{split}"
    except FileNotFoundError as exc:  # DataNotFoundError is one
        return None, f"random starts: no {dataset} data for templates ({exc})"
