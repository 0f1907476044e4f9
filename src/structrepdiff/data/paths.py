"""Resolve the data directory: --data-dir flag, then $STRUCTREPDIFF_DATA, then ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "STRUCTREPDIFF_DATA"
NO_SHARED_ENV = "STRUCTREPDIFF_NO_SHARED"  # set (to anything but "" or "0"): skip ../shared/data
DEFAULT_DOWNLOAD_DIR = Path.home() / ".cache" / "structrepdiff" / "data"


class DataNotFoundError(FileNotFoundError):
    """No data directory could be found; the message says how to get the data."""


def _candidate_shared_dirs() -> list[Path]:
    """`../shared/data` relative to the working directory and to the repository root; none
    when ``$STRUCTREPDIFF_NO_SHARED`` is set (a run that must not see this checkout's data)."""
    if os.environ.get(NO_SHARED_ENV, "") not in ("", "0"):
        return []
    repo_root = Path(__file__).resolve().parents[3]
    out = []
    for base in (Path.cwd(), repo_root):
        cand = (base / ".." / "shared" / "data").resolve()
        if cand not in out:
            out.append(cand)
    return out


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the data directory.

    Order: the explicit ``data_dir`` argument (``--data-dir``), the ``STRUCTREPDIFF_DATA``
    environment variable, ``../shared/data`` (next to the working directory or the repository;
    not with ``$STRUCTREPDIFF_NO_SHARED`` set), then the download cache
    ``~/.cache/structrepdiff/data``. An explicit directory that does not exist is an error,
    never silently replaced by a fallback.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"`data_dir` {path} is not a directory")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"${ENV_VAR}={env} is not a directory")
        return path
    for cand in [*_candidate_shared_dirs(), DEFAULT_DOWNLOAD_DIR]:
        if cand.is_dir():
            return cand
    raise DataNotFoundError(
        "No data directory found. Pass `data_dir`, set $"
        f"{ENV_VAR}, or download the CDVAE CSVs with "
        "`structrepdiff data download mp_20` (also perov_5, carbon_24), which writes to "
        f"{DEFAULT_DOWNLOAD_DIR}."
    )


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (cache keys of derived tables)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """$STRUCTREPDIFF_CACHE, else ~/.cache/structrepdiff (reference tables, templates)."""
    env = os.environ.get("STRUCTREPDIFF_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "structrepdiff"
