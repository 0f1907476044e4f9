"""Adapter to pyxtal: the group, Wyckoff pattern and free parameters of a crystal."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from structrepdiff.symmetry.groups import group_orbits


@dataclass(frozen=True)
class WyckoffCrystal:
    """A crystal written on Wyckoff parameters in pyxtal's standard setting of its group.

    Attributes:
        sg: space group number.
        pattern: ((Z, letter), ...) one entry per orbit.
        xyz: (O, 3) free vector of each orbit (conventional fractional).
        lattice: (6,) conventional a, b, c Å, α, β, γ deg.
    """

    sg: int
    pattern: tuple[tuple[int, str], ...]
    xyz: np.ndarray
    lattice: np.ndarray

    def to_dict(self) -> dict:
        return {"sg": self.sg, "pattern": [list(p) for p in self.pattern],
                "xyz": self.xyz.tolist(), "lattice": self.lattice.tolist()}  # fmt: skip

    def to_structure(self):
        """The crystal as a pymatgen Structure in its primitive cell (the first m / c sites of
        every orbit in the cell T · L_conv; c the centering order)."""
        from pymatgen.core import Lattice, Structure

        from structrepdiff.symmetry.groups import centering_matrix, centering_order

        orbits, c = group_orbits(self.sg), centering_order(self.sg)
        conv = Lattice.from_parameters(*self.lattice).matrix
        species, frac = [], []
        for (z, letter), p in zip(self.pattern, self.xyz, strict=True):
            orb = orbits[letter]
            m = orb.multiplicity // c
            species += [int(z)] * m
            frac.append(orb.sites(p)[:m])
        cart = np.concatenate(frac) @ conv
        return Structure(Lattice(centering_matrix(self.sg) @ conv), species, cart,
                         coords_are_cartesian=True)  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> WyckoffCrystal:
        return cls(
            int(d["sg"]),
            tuple((int(z), str(x)) for z, x in d["pattern"]),
            np.asarray(d["xyz"], float).reshape(-1, 3),
            np.asarray(d["lattice"], float),
        )


def _free_vector(sg: int, letter: str, position: np.ndarray) -> np.ndarray:
    """p with site 0 of the orbit at ``position`` (modulo lattice vectors)."""
    orb = group_orbits(sg)[letter]
    p, *_ = np.linalg.lstsq(orb.rot[0], np.asarray(position, float) - orb.trans[0], rcond=None)
    return p


def describe(structure, tol: float = 0.01) -> WyckoffCrystal | str:
    """The crystal on Wyckoff parameters (pyxtal ``from_seed`` at ``tol`` Å), or the reason it
    could not be described."""
    import os

    from pyxtal import pyxtal

    os.environ.setdefault("SPGLIB_WARNING", "OFF")  # spglib's C warnings on stderr, per crystal
    c = pyxtal()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.from_seed(structure, tol=tol)
    except Exception as exc:  # pyxtal raises many kinds; one reason line per crystal
        return f"pyxtal could not find the symmetry: {type(exc).__name__}: {exc}"
    sg = int(c.group.number)
    from pyxtal.symmetry import Group

    if c.group.hall_number != Group(sg).hall_number:
        return f"pyxtal chose a non-standard setting of group {sg}"
    from pymatgen.core import Element

    pattern = tuple((Element(site.specie).Z, site.wp.letter) for site in c.atom_sites)
    xyz = np.array([_free_vector(sg, s.wp.letter, s.position) for s in c.atom_sites])
    return WyckoffCrystal(sg, pattern, xyz, np.array(c.lattice.get_para(degree=True)))


def describe_split(
    dataset: str,
    split: str,
    cache: str | Path | None = None,
    data_dir: str | None = None,
    tol: float = 0.01,
) -> list[tuple[str, np.ndarray, WyckoffCrystal]]:
    """(id, numbers (n,), `WyckoffCrystal`) of every crystal of a data split that pyxtal can
    describe at ``tol`` Å (~20 ms each), cached as JSON in the folder ``cache`` when given."""
    import json

    name = f"{dataset}_{split}" + ("" if tol == 0.01 else f"_tol{tol:g}") + "_wyckoff.json"
    path = None if cache is None else Path(cache) / name
    if path is None or not path.exists():
        from structrepdiff.data.io import load_split

        loaded = load_split(dataset, split, data_dir)
        rows = []
        for rid, s in zip(loaded.ids, loaded.structures, strict=True):
            w = describe(s, tol)
            if not isinstance(w, str):
                rows.append({"id": rid, "numbers": [int(z) for z in s.atomic_numbers],
                             **w.to_dict()})  # fmt: skip
        if path is not None:
            from structrepdiff.data.atomic import atomic_write

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda p: p.write_text(json.dumps(rows)), force=True,
                         suffix=".json")  # fmt: skip
        return _crystals(rows)
    return load_description(path)


def load_group_table(path: str | Path) -> dict[str, int]:
    """{id: space group} from a JSON file holding such a dict or `describe_split` rows (a
    list of objects with "id" and "sg"). Raises ValueError with a one-line reason."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read space groups from {path}: {exc}") from None
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        data = {r.get("id"): r.get("sg") for r in data}
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds neither {{id: group}} nor describe_split rows")
    out = {}
    for rid, sg in data.items():
        if not isinstance(sg, int) or not 1 <= sg <= 230:
            raise ValueError(f"{path}: crystal {rid!r} has space group {sg!r}, not 1–230")
        out[str(rid)] = sg
    return out


def cached_description_path(dataset: str, split: str, data_dir: str | None = None,
                            cache_dir: str | Path | None = None, tol: float = 0.01
                            ) -> Path:  # fmt: skip
    """The JSON file of `describe_split` of one dataset split at ``tol`` Å, built once under
    ``cache_dir`` (default `default_cache_dir`) keyed by the split file's sha256, like the
    template files."""
    from structrepdiff.data.io import split_path
    from structrepdiff.data.paths import default_cache_dir, file_sha256

    source = split_path(data_dir, dataset, split)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / "wyckoff" / file_sha256(source)[:16]
    path = folder / (f"{dataset}_{split}" + ("" if tol == 0.01 else f"_tol{tol:g}")
                     + "_wyckoff.json")  # the name `describe_split` writes
    if not path.is_file():
        describe_split(dataset, split, folder, data_dir, tol)
    return path


def load_description(path: str | Path) -> list[tuple[str, np.ndarray, WyckoffCrystal]]:
    """The rows of a `describe_split` JSON file."""
    import json

    return _crystals(json.loads(Path(path).read_text()))


def _crystals(rows: list[dict]) -> list[tuple[str, np.ndarray, WyckoffCrystal]]:
    return [(r["id"], np.array(r["numbers"]), WyckoffCrystal.from_dict(r)) for r in rows]


def cached_description(dataset: str, split: str, data_dir: str | None = None,
                       cache_dir: str | Path | None = None, tol: float = 0.01
                       ) -> list[tuple[str, np.ndarray, WyckoffCrystal]]:  # fmt: skip
    """`describe_split` of one dataset split at ``tol`` Å through `cached_description_path`."""
    return load_description(cached_description_path(dataset, split, data_dir, cache_dir, tol))
