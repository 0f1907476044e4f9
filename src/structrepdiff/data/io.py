"""Read CDVAE-format CSVs and CIF files into pymatgen Structures, skipping bad rows with reasons."""

from __future__ import annotations

import logging
import re
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from tqdm.auto import tqdm

from structrepdiff.data.paths import resolve_data_dir
from structrepdiff.data.registry import get_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """A row that was not used: its id and the reason."""

    id: str
    reason: str


@dataclass
class LoadedStructures:
    """Parsed structures with their ids, and every skipped row with its reason."""

    ids: list[str] = field(default_factory=list)
    structures: list[Structure] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def reason_counts(self) -> Counter:
        return reason_counts(self.skipped)


def reason_counts(skipped: Iterable[Skipped]) -> Counter:
    """How many rows were skipped for each kind of reason (text before the first ':')."""
    return Counter(s.reason.split(":")[0] for s in skipped)


def split_path(data_dir: str | Path | None, dataset: str, split: str) -> Path:
    """Path of ``<data_dir>/<dataset>/<split>.csv`` or ``.csv.gz``; clear error if absent."""
    info = get_dataset(dataset)
    root = resolve_data_dir(data_dir)
    for suffix in (".csv", ".csv.gz"):
        path = root / info.name / f"{split}{suffix}"
        if path.is_file():
            return path
    folder = root / info.name
    present = sorted(p.name for p in folder.glob("*.csv*")) if folder.is_dir() else []
    raise FileNotFoundError(
        f"no {split}.csv or {split}.csv.gz for {dataset} in {root / info.name} "
        f"(present: {', '.join(present) or 'nothing'}); "
        f"fetch it with structrepdiff.data.download.download_split('{dataset}', '{split}') or "
        f"the command 'structrepdiff data download {dataset}'"
    )


def read_cdvae_csv(path: str | Path, limit: int | None = None) -> pd.DataFrame:
    """Read a CDVAE CSV (gz allowed); needs a ``cif`` column, ids from ``material_id`` or row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} does not exist")
    try:
        df = pd.read_csv(path, nrows=limit)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            EOFError, zlib.error) as exc:  # fmt: skip
        why = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path} is not a readable CSV file ({why})") from None
    if "cif" not in df.columns:
        raise ValueError(f"{path} has no 'cif' column (columns: {', '.join(map(str, df.columns))})")
    if "material_id" not in df.columns:
        df["material_id"] = [f"row{k}" for k in range(len(df))]
    return df


# Two atoms closer than this (Å) make a crystal unusable: the evaluator calls it invalid
# (CDVAE's structure validity uses the same 0.5 Å) and EAD would encode a non-physical pair.
MIN_DISTANCE = 0.5


def nonfinite_reason(s: Structure) -> str | None:
    """"non-finite lattice or coordinates" when a cell or coordinate entry is NaN or infinite
    (spglib, CrystalNN and the potentials crash or hang on them), else None."""
    try:
        ok = np.isfinite(s.lattice.matrix).all() and np.isfinite(s.frac_coords).all()
    except Exception:
        ok = False
    return None if ok else "non-finite lattice or coordinates"


def check_structure(s: Structure, atomic_numbers: Sequence[int], n_max: int) -> str | None:
    """Reason why a structure cannot be used with this vocabulary and N_max, else None."""
    bad = nonfinite_reason(s)
    if bad:
        return bad
    if not s.is_ordered:
        return "disordered sites: partial occupancies are not supported"
    outside = sorted({sp.symbol for sp in s.species if sp.Z not in set(atomic_numbers)})
    if outside:
        return f"element outside the vocabulary: {', '.join(outside)}"
    if len(s) > n_max:
        return f"too many atoms: {len(s)} > N_max = {n_max}"
    if s.volume <= 1e-6:
        return f"degenerate cell: volume {s.volume:.3g} Å³"
    if len(s) > 1:
        d = s.distance_matrix[np.triu_indices(len(s), 1)].min()  # nearest periodic images
        if d < MIN_DISTANCE:
            return f"overlapping atoms: {d:.3g} Å apart (< {MIN_DISTANCE} Å)"
    return None


def parse_cif(text: str) -> Structure:
    """One Structure from CIF text; raises ValueError with the parser's message."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty CIF")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return Structure.from_str(text, fmt="cif")
        except Exception as exc:  # pymatgen raises many types for bad CIFs
            why = f"{type(exc).__name__}: {exc}"
            said = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
            if said:  # pymatgen's own account of what was wrong (overlaps, a flat cell, ...)
                why += f" (pymatgen: {'; '.join(said[:2])[:300]})"
            raise ValueError(why) from None


def _collect(items: Iterable[tuple[str, Structure | None, str | None]],
             atomic_numbers: Sequence[int], n_max: int, log_skips: bool = True
             ) -> LoadedStructures:  # fmt: skip
    """(id, structure, reason so far) → the crystals that pass `check_structure`, one per id
    (a repeat would later overwrite the first's files), and every other with its reason."""
    out, seen = LoadedStructures(), set()
    for rid, s, reason in items:
        if rid in seen:
            reason = "duplicate id: an earlier row has the same id"
        elif reason is None:
            reason = check_structure(s, atomic_numbers, n_max)
        seen.add(rid)
        if reason is None:
            out.ids.append(rid)
            out.structures.append(s)
        else:
            if log_skips:
                log.warning("skipping %s: %s", rid, reason)
            out.skipped.append(Skipped(rid, reason))
    return out


def _parsed(rows: Iterable[tuple[str, str]]) -> Iterator[tuple[str, Structure | None, str | None]]:
    for rid, text in rows:
        try:
            yield str(rid), parse_cif(text), None
        except ValueError as exc:
            yield str(rid), None, f"unparseable CIF: {exc}"


def parse_rows(
    rows: Iterable[tuple[str, str]],
    atomic_numbers: Sequence[int],
    n_max: int,
    progress: bool = False,
    total: int | None = None,
) -> LoadedStructures:
    """Parse (id, cif text) pairs; bad ones are skipped, logged and counted with a reason."""
    bar = tqdm(rows, total=total, disable=not progress, desc="parse", unit="cif")
    return _collect(_parsed(bar), atomic_numbers, n_max)


def check_structures(
    structures: Sequence[Structure], ids: Sequence[str], atomic_numbers: Sequence[int], n_max: int
) -> LoadedStructures:
    """In-memory structures through the same checks as parsed rows (`check_structure`, one
    row per id): the ones that pass, and every other with its reason."""
    if len(structures) != len(ids):
        raise ValueError(f"{len(structures)} structures but {len(ids)} ids")
    items = ((rid, s, None if isinstance(s, Structure)
              else f"not a pymatgen Structure: {type(s).__name__}")
             for rid, s in zip(map(str, ids), structures, strict=True))  # fmt: skip
    return _collect(items, atomic_numbers, n_max, log_skips=False)


def load_split(
    dataset: str,
    split: str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> LoadedStructures:
    """Structures of one dataset split, validated against the dataset's vocabulary and N_max."""
    info = get_dataset(dataset)
    df = read_cdvae_csv(split_path(data_dir, dataset, split), limit=limit)
    rows = zip(df["material_id"].astype(str), df["cif"], strict=True)
    return parse_rows(rows, info.atomic_numbers, info.n_max, progress, total=len(df))


def cif_files_in(folder: Path) -> list[Path]:
    """The CIF entries of one folder, as every command expands it: names ending ``.cif`` in
    any case, sorted, without hidden files (an interrupted atomic write leaves ``.x.cif.*``)."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() == ".cif" and not p.name.startswith("."))  # fmt: skip


def read_cif_text(path: Path) -> tuple[str | None, str]:
    """(text, "") or (None, why the file cannot be read as text)."""
    if path.is_dir():
        return None, f"{path.name} is a folder, not a CIF file"
    try:
        return path.read_text(encoding="utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"{path.name} is not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        return None, f"cannot read {path.name}: {exc.strerror or exc}"


_DATA_LINE = re.compile(r"^[ \t]*data_(\S*)", re.IGNORECASE | re.MULTILINE)


def split_cif_blocks(text: str) -> list[tuple[str | None, str]]:
    """(block name, text) for every ``data_`` block of a CIF; one block gives ``[(None, text)]``
    so single-block files keep their plain id. Text before the first block (comments) is kept
    with each block; repeated or empty block names get ``~k`` / their index so names are unique."""
    starts = [(m.start(), m.group(1)) for m in _DATA_LINE.finditer(text)]
    if len(starts) < 2:
        return [(None, text)]
    head, out, used = text[: starts[0][0]], [], set()
    for k, (pos, name) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        name, base, j = name or str(k + 1), name or str(k + 1), 1
        while name in used:
            j += 1
            name = f"{base}~{j}"
        used.add(name)
        out.append((name, head + text[pos:end]))
    return out


def cif_rows(rid: str, text: str) -> list[tuple[str, str]]:
    """(id, text) per block of one CIF file: ``rid`` for a single block, ``rid:block`` else."""
    return [(rid if b is None else f"{rid}:{b}", t) for b, t in split_cif_blocks(text)]


def expand_cif_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded by `cif_files_in`; missing paths raise."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(cif_files_in(p))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"CIF path {p} does not exist")
    if not files:
        raise FileNotFoundError(f"no CIF files found in {', '.join(map(str, paths))}")
    return files


def load_cifs(
    paths: Sequence[str | Path], atomic_numbers: Sequence[int], n_max: int, progress: bool = False
) -> LoadedStructures:
    """Structures from CIF files or folders; ids are the file stems (made unique), and
    ``<stem>:<block>`` for each block of a multi-block CIF."""
    files = expand_cif_paths(paths)
    used: set[str] = set()
    rows, unreadable = [], []
    for f in files:
        rid, k = f.stem, 1
        while rid in used:
            k += 1
            rid = f"{f.stem}_{k}"
        used.add(rid)
        text, why = read_cif_text(f)
        if text is None:
            unreadable.append(Skipped(rid, why))
            log.warning("skipping %s: %s", rid, why)
        else:
            rows.extend(cif_rows(rid, text))
    out = parse_rows(rows, atomic_numbers, n_max, progress, total=len(rows))
    out.skipped.extend(unreadable)
    return out


# MP-20 benchmark subsets take equal shares of small, medium and large cells
SIZE_BINS = ((1, 6), (7, 12), (13, 10_000))


def seeded_subset(loaded: LoadedStructures, n: int, seed: int, stratified: bool = False
                  ) -> tuple[list[str], list[Structure]]:  # fmt: skip
    """(ids, structures) of ``n`` rows drawn with ``seed``, in file order; ``stratified``
    draws n // 3 from each of `SIZE_BINS` (atom counts), as the MP-20 benchmark tables do."""
    rng = np.random.default_rng(seed)
    sizes = np.array([len(s) for s in loaded.structures])
    if stratified:
        picks = [rng.choice(np.flatnonzero((sizes >= lo) & (sizes <= hi)), n // 3, replace=False)
                 for lo, hi in SIZE_BINS]  # fmt: skip
        idx = np.sort(np.concatenate(picks))
    else:
        idx = np.sort(rng.choice(len(sizes), min(n, len(sizes)), replace=False))
    return [loaded.ids[k] for k in idx], [loaded.structures[k] for k in idx]
