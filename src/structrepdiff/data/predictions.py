"""Read generated or reconstructed crystals from any model, keeping every failure with a reason.

Unlike the dataset loaders, nothing is skipped here: an unreadable or missing prediction stays
in the list with ``structure=None`` and a reason, because the metrics count it (as invalid, or
as a non-match). Accepted ``path`` forms:

- a folder with ``summary.csv`` (output of `reconstruct` / `generate`): one prediction per row,
  the CIF named in its ``cif`` column, or none with the row's status and reason;
- a folder of ``*.cif`` files (ids are the file stems), or one ``.cif`` file; each block of a
  multi-block CIF is one prediction with id ``<stem>:<block>``;
- an ``.extxyz`` / ``.xyz`` file (ids from each frame's ``id`` info, else the frame index);
- a CDVAE-format CSV (``.csv`` / ``.csv.gz``) with a ``cif`` column and ids from
  ``material_id`` or ``id`` (else the row number); a row with an empty ``cif`` keeps the
  text of an optional ``reason`` column (as `save_predictions_csv` writes it).
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pymatgen.core import Structure

from structrepdiff.data.io import (
    cif_files_in,
    cif_rows,
    nonfinite_reason,
    parse_cif,
    read_cif_text,
)
from structrepdiff.data.run_folder import SUMMARY


@dataclass(frozen=True)
class Prediction:
    """One predicted crystal; ``structure`` is None when there is none, and ``reason`` says why.
    A structure with a non-finite cell or coordinate is no structure (every reader goes
    through here, so nothing downstream — spglib, CrystalNN, a potential — ever sees one)."""

    id: str
    structure: Structure | None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.structure is not None and (why := nonfinite_reason(self.structure)):
            object.__setattr__(self, "structure", None)
            object.__setattr__(self, "reason", why)


def _from_cif_file(rid: str, path: Path) -> list[Prediction]:
    """One prediction per ``data_`` block (ids ``rid`` or ``rid:block``, see `cif_rows`)."""
    text, why = read_cif_text(path)
    if text is None:
        return [Prediction(rid, None, why)]
    out = []
    for bid, block in cif_rows(rid, text):
        try:
            out.append(Prediction(bid, parse_cif(block)))
        except ValueError as exc:
            out.append(Prediction(bid, None, f"unreadable CIF {path.name}: {exc}"))
    return out


def _from_summary(folder: Path) -> list[Prediction]:
    with open(folder / SUMMARY, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"id", "status"} <= set(rows[0]):
        raise ValueError(f"{folder / 'summary.csv'} has no id/status columns")
    out = []
    for r in rows:
        if r.get("cif"):
            out.extend(_from_cif_file(r["id"], folder / r["cif"]))
        else:
            why = r.get("reason") or "no structure"
            out.append(Prediction(r["id"], None, f"{r['status']}: {why}"))
    return out


def _from_cif_folder(folder: Path) -> list[Prediction]:
    files = cif_files_in(folder)
    if not files:
        raise FileNotFoundError(f"{folder} holds neither summary.csv nor *.cif files")
    return [p for f in files for p in _from_cif_file(f.stem, f)]


def _extxyz_frames(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(index, frame text or None, reason) for every frame, split on the atom-count lines,
    so one bad frame is a reason and the frames after it are still read."""
    lines = path.read_text(errors="replace").splitlines(keepends=True)
    k, i = 0, 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            n = int(lines[i].split()[0])
            if n < 0 or i + n + 2 > len(lines):
                raise ValueError
        except ValueError:
            why = f"frame {k} (line {i + 1}): no atom count; the rest of the file is unreadable"
            yield k, None, why
            return
        yield k, "".join(lines[i : i + n + 2]), ""
        k, i = k + 1, i + n + 2


def _from_extxyz(path: Path) -> list[Prediction]:
    from io import StringIO

    from ase.io import read
    from pymatgen.io.ase import AseAtomsAdaptor

    out = []
    for k, text, reason in _extxyz_frames(path):
        if text is None:
            out.append(Prediction(str(k), None, reason))
            continue
        rid = str(k)
        try:
            atoms = read(StringIO(text), format="extxyz")
            rid = str(atoms.info.get("id", k))
            if not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-12:
                out.append(Prediction(rid, None, f"frame {k} has no periodic 3-D cell"))
                continue
            out.append(Prediction(rid, AseAtomsAdaptor.get_structure(atoms)))
        except Exception as exc:  # ASE and pymatgen raise many types for a bad frame
            why = f"frame {k}: unreadable ({type(exc).__name__}: {exc})"
            out.append(Prediction(rid, None, why))
    return out


def _from_csv(path: Path) -> list[Prediction]:
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            EOFError, zlib.error) as exc:  # fmt: skip
        why = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path} is not a readable CSV file ({why})") from None
    if "cif" not in df.columns:
        raise ValueError(f"{path} has no 'cif' column (CDVAE format: material_id, cif, ...)")
    id_col = next((c for c in ("material_id", "id") if c in df.columns), None)
    ids = df[id_col].astype(str) if id_col else pd.Series(range(len(df))).astype(str)
    reasons = df["reason"] if "reason" in df.columns else pd.Series([None] * len(df))
    out = []
    for rid, text, why in zip(ids, df["cif"], reasons, strict=True):
        if not isinstance(text, str) or not text.strip():
            out.append(Prediction(rid, None, why if isinstance(why, str) and why else "empty CIF"))
            continue
        try:
            out.append(Prediction(rid, parse_cif(text)))
        except ValueError as exc:
            out.append(Prediction(rid, None, f"unparseable CIF: {exc}"))
    return out


def save_predictions_csv(preds: list[Prediction], path: str | Path, force: bool = False) -> None:
    """Write ``preds`` as one CDVAE-format CSV (``material_id``, ``cif``, ``reason``; gzip if
    the name ends in ``.gz``), atomically: a portable copy that `load_predictions` reads back
    with every failure and its reason."""
    from pymatgen.io.cif import CifWriter

    from structrepdiff.data.atomic import atomic_write

    df = pd.DataFrame({
        "material_id": [p.id for p in preds],
        "cif": [str(CifWriter(p.structure)) if p.structure is not None else "" for p in preds],
        "reason": [p.reason or "" for p in preds],
    })  # fmt: skip
    gz = str(path).endswith(".gz")
    atomic_write(Path(path), lambda t: df.to_csv(t, index=False,
                                                 compression="gzip" if gz else None),
                 force=force)  # fmt: skip


def load_predictions(path: str | Path) -> list[Prediction]:
    """Every prediction at ``path`` (see the module docstring), in file order."""
    path = Path(path)
    if path.is_dir():
        return _from_summary(path) if (path / SUMMARY).is_file() else _from_cif_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions {path} do not exist")
    name = path.name.lower()
    if name.endswith(".cif"):
        return _from_cif_file(path.stem, path)
    if name.endswith((".extxyz", ".xyz")):
        return _from_extxyz(path)
    if name.endswith((".csv", ".csv.gz")):
        return _from_csv(path)
    raise ValueError(f"cannot read predictions from {path}: expected a folder, .cif, .extxyz "
                     "or CDVAE-format .csv")  # fmt: skip
