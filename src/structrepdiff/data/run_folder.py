"""The layout of a run folder, in one place: file names, the columns of ``summary.csv``, and
the bookkeeping every stage shares (writer, reader, clearing on ``force``, file-safe ids).

A `reconstruct` / `generate` folder holds ``samples.npz`` (generate), ``summary.csv`` (one row
per sample: `RECONSTRUCT_FIELDS`), a CIF per crystal, ``generated.extxyz`` and the settings
(``generate_config.json``, ``reconstruct_config.json``); a `relax` folder ``summary.csv``
(`RELAX_FIELDS`), CIFs, ``relaxed.extxyz`` and ``relax_config.json``; `evaluate` writes
``metrics.json`` and ``per_crystal.csv``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from structrepdiff.data.atomic import atomic_write

SUMMARY = "summary.csv"
SAMPLES = "samples.npz"
GENERATED_EXTXYZ = "generated.extxyz"
RELAXED_EXTXYZ = "relaxed.extxyz"
GENERATE_CONFIG = "generate_config.json"
RECONSTRUCT_CONFIG = "reconstruct_config.json"
RELAX_CONFIG = "relax_config.json"
RELAXED_DIR = "relaxed"  # `generate --relax` relaxes into this subfolder
METRICS = "metrics.json"
PER_CRYSTAL = "per_crystal.csv"


def evaluation_dir(mode: str) -> str:
    """The folder `evaluate MODE` writes beside its input by default."""
    return f"evaluation_{mode}"


RECONSTRUCT_FIELDS = ("id", "status", "loss", "converged", "steps", "seconds", "reason", "cif",
                      "space_group")  # fmt: skip
RELAX_FIELDS = ("id", "status", "energy_before", "energy_after", "steps", "converged", "rmsd",
                "volume_ratio", "seconds", "reason", "cif")  # fmt: skip


def is_relax_output(folder: str | Path) -> bool:
    """Whether ``folder`` is a `relax` output (its summary has relaxed energies)."""
    path = Path(folder) / SUMMARY
    if not path.is_file():
        return False
    with open(path, newline="") as fh:
        return "energy_after" in (csv.DictReader(fh).fieldnames or ())


def safe_name(crystal_id: str) -> str:
    """A file-name-safe version of an id, distinct for distinct ids: an id that needed any
    character replaced gets 8 hex digits of its sha256 ("a/b" and "a_b" never share a file)."""
    import hashlib

    name = re.sub(r"[^A-Za-z0-9._-]", "_", crystal_id)
    if name == crystal_id and name not in ("", ".", ".."):
        return name
    return f"{name or 'crystal'}-{hashlib.sha256(crystal_id.encode()).hexdigest()[:8]}"


def dedupe_ids(ids: list[str]) -> list[str]:
    """``ids`` with each repeat renamed ``<id>~<k>`` (k = 2, 3, …), so no crystal overwrites
    another's file or summary row."""
    seen: dict[str, int] = {}
    out = []
    for rid in ids:
        k = seen[rid] = seen.get(rid, 0) + 1
        out.append(rid if k == 1 else f"{rid}~{k}")
    if len(set(out)) != len(out):  # "x~2" was itself an id: rename until unique
        return dedupe_ids(out)
    return out


def read_summary(path: Path, repair: bool = True) -> dict[str, dict[str, str]]:
    """Rows of an existing summary.csv by id; a torn last line (no newline) is dropped, and
    with ``repair`` (a run about to resume into the file) cut from the file too."""
    if not path.exists():
        return {}
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        if repair:
            path.write_text(text)
    rows = list(csv.DictReader(text.splitlines()))
    return {r["id"]: r for r in rows if r.get("id")}


class SummaryWriter:
    """Appends one row per crystal to a summary file (columns ``fields``), flushed at once."""

    def __init__(self, path: Path, fields: tuple[str, ...] = RECONSTRUCT_FIELDS):
        new = not path.exists() or path.stat().st_size == 0
        if not new:  # resuming a file written with other columns keeps its own header
            with open(path, newline="") as fh:
                fields = tuple(next(csv.reader(fh), fields))
        self.fields = fields
        self.fh = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
        self.writer = csv.DictWriter(self.fh, fieldnames=fields)
        if new:
            self.writer.writeheader()

    def write(self, **row) -> None:
        self.writer.writerow({k: row.get(k, "") for k in self.fields})
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def summary_extxyz(out: Path, name: str, info) -> int:
    """Rebuild ``out/<name>`` (atomically) from the CIFs named in ``out/summary.csv``, each
    frame's ``info`` updated with ``info(row)``; returns the number of frames."""
    from ase.io import read, write

    frames = []
    for r in read_summary(out / SUMMARY).values():
        if r.get("cif"):
            atoms = read(out / r["cif"])
            atoms.info.update(info(r))
            frames.append(atoms)
    atomic_write(out / name, lambda p: write(p, frames, format="extxyz"), force=True,
                 suffix=".extxyz")  # fmt: skip
    return len(frames)


def clear_run(summary: Path, *extra: str) -> int:
    """Remove what an earlier run in ``summary``'s folder wrote (--force): the crystal files its
    rows name, the summary itself and ``extra`` files. Nothing the run does not own is touched.
    Returns the number of crystal files removed."""
    folder, n = summary.parent, 0
    for row in read_summary(summary).values():
        name = row.get("cif") or ""
        if name and Path(name).name == name:  # a plain file name inside the run folder
            n += (folder / name).is_file()
            (folder / name).unlink(missing_ok=True)
    for name in (summary.name, *extra):
        (folder / name).unlink(missing_ok=True)
    return n


LOCK = ".structrepdiff.lock"
_HELD: dict[str, tuple[object, int]] = {}  # resolved folder -> (open lock file, depth)


class RunFolderBusyError(FileExistsError):
    """Another process is writing into the run folder."""


class run_lock:  # noqa: N801 - used as a context manager, like open()
    """Hold ``folder``'s lock while a run writes into it (``fcntl.flock`` on a lock file, so
    a killed process frees it at once): a second run into the same folder is refused in one
    line that names the holder (pid, command, start). Re-entrant within one process (a
    `generate` holds it while its reconstruction takes it again). A folder the run created
    and left empty is removed on the way out."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def __enter__(self) -> run_lock:
        import fcntl
        import os
        import sys
        import time

        key = str(self.folder.resolve())
        if key in _HELD:
            fh, depth = _HELD[key]
            _HELD[key] = (fh, depth + 1)
            return self
        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.folder / LOCK, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = " ".join(fh.read().split()) or "another process"
            fh.close()
            raise RunFolderBusyError(f"{self.folder} is in use by {holder}; wait for it to finish "
                                "or use another `out`") from None
        fh.seek(0)
        fh.truncate()
        cmd = " ".join(Path(a).name if k == 0 else a for k, a in enumerate(sys.argv))[:200]
        fh.write(f"pid {os.getpid()} ({cmd}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        fh.flush()
        _HELD[key] = (fh, 1)
        return self

    def __exit__(self, *exc) -> None:
        key = str(self.folder.resolve())
        fh, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fh, depth - 1)
            return
        del _HELD[key]
        fh.truncate(0)
        fh.close()  # closing the file releases the flock
        if self.created and {p.name for p in self.folder.iterdir()} <= {LOCK}:
            (self.folder / LOCK).unlink(missing_ok=True)  # a run that wrote nothing leaves
            self.folder.rmdir()  # no empty folder behind


def same_path(value: str | Path | None) -> str | None:
    """A path as run settings record it: resolved (symlinks followed, made absolute), so a
    resume with the same file spelled another way is the same run. None stays None."""
    return None if value is None else str(Path(value).expanduser().resolve())


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume(folder: Path, config_file: str, settings: dict, what: str = "a run") -> None:
    """Refuse to resume into ``folder`` when its ``config_file`` records other settings: one
    line naming every differing setting with both values, and saying what `force` deletes."""
    import json

    path = Path(folder) / config_file
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        saved = {}
    a, b = _flat(saved), _flat(json.loads(json.dumps(settings, default=str)))
    diff = [f"{k}: {a.get(k)!r} then, {b.get(k)!r} now" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]  # fmt: skip
    if diff:
        done = len(read_summary(Path(folder) / SUMMARY, repair=False))
        raise FileExistsError(f"{folder} holds {what} with other settings ({'; '.join(diff)}); "
                              f"use another `out`, or `force`=True to delete its {done} "
                              "finished crystals and start over")  # fmt: skip
