"""Feature files: R matrices with ids, block layout and the representation, saved as .npz."""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from structrepdiff.data.atomic import atomic_write
from structrepdiff.data.io import Skipped
from structrepdiff.representation.encode import Representation

FORMAT_VERSION = 1


@dataclass
class FeatureSet:
    """R (n, D) float64 in raw units, the ids of its rows and everything that defines it."""

    R: np.ndarray
    ids: list[str]
    rep: Representation
    skipped: list[Skipped] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.R.ndim != 2 or self.R.shape != (len(self.ids), self.rep.layout.dim):
            raise ValueError(
                f"R shape {self.R.shape} does not match {len(self.ids)} ids "
                f"and dimension {self.rep.layout.dim}"
            )

    def block(self, name: str) -> np.ndarray:
        """Columns of one named block, e.g. ``fs.block("lattice")`` -> (n, 6)."""
        return self.R[:, self.rep.layout.slices[name]]


def save_features(fs: FeatureSet, path: str | Path, force: bool = False) -> None:
    """Write an .npz atomically: R, ids, block names/sizes, elements, representation (JSON)."""
    from pymatgen.core import Element

    layout = fs.rep.layout.to_dict()
    arrays = {
        "R": fs.R.astype(np.float64),
        "ids": np.array(fs.ids, dtype=str),
        "block_names": np.array(layout["names"], dtype=str),
        "block_sizes": np.array(layout["sizes"], dtype=np.int64),
        "elements": np.array([Element.from_Z(z).symbol for z in fs.rep.atomic_numbers], dtype=str),
        "atomic_numbers": np.array(fs.rep.atomic_numbers, dtype=np.int64),
        "skipped_ids": np.array([s.id for s in fs.skipped], dtype=str),
        "skipped_reasons": np.array([s.reason for s in fs.skipped], dtype=str),
        "meta": np.array(
            json.dumps(
                {
                    "format_version": FORMAT_VERSION,
                    "representation": fs.rep.to_dict(),
                    "source": fs.source,
                }
            )
        ),
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(Path(path), write, force=force, suffix=".npz")


def load_features(path: str | Path) -> FeatureSet:
    """Read a file written by ``save_features``; other files give a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            meta = json.loads(str(f["meta"]))
            if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
                raise ValueError("missing or unsupported format_version in meta")
            skipped = [
                Skipped(str(i), str(r))
                for i, r in zip(f["skipped_ids"], f["skipped_reasons"], strict=True)
            ]
            return FeatureSet(
                R=f["R"],
                ids=[str(x) for x in f["ids"]],
                rep=Representation.from_dict(meta["representation"]),
                skipped=skipped,
                source=meta.get("source", {}),
            )
    except (KeyError, ValueError, TypeError, AttributeError, OSError, EOFError,
            zipfile.BadZipFile, zlib.error) as exc:  # fmt: skip
        raise ValueError(
            f"{path} is not a structrepdiff feature file (truncated or foreign: "
            f"{type(exc).__name__}: {exc})"
        ) from None
