"""Download the public CDVAE CSVs over HTTP(S): resumable, size- and sha256-verified.

Layout: ``<dest_dir>/<dataset>/<split>.csv`` with a ``<split>.csv.sha256`` sidecar
(``sha256sum`` format). A transfer streams into ``<split>.csv.part``; an interrupted transfer
leaves the ``.part`` behind so the next call resumes it with an HTTP ``Range`` request. The
final name only ever appears (via an atomic ``os.replace``) after verification succeeded.
Standard library only (``urllib.request``) plus ``tqdm`` for the progress bar.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from structrepdiff import __version__
from structrepdiff.data.paths import file_sha256 as sha256_file
from structrepdiff.data.registry import CDVAE_BASE_URL, DatasetInfo, get_dataset

log = logging.getLogger(__name__)

_USER_AGENT = f"structrepdiff/{__version__} (+urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(?P<first>\d+)-(?P<last>\d+)/(?P<total>\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(?P<total>\d+)")


class DownloadError(RuntimeError):
    """A download failed (HTTP error, unreachable host, interrupted or corrupt transfer).

    The message names the URL and says what to do next (re-run to resume, ``--force``, ...).
    """


@dataclass(frozen=True)
class DownloadResult:
    """Outcome of one split download.

    ``n_bytes`` is the size of the final file in bytes; ``sha256`` its hex digest.
    ``verified`` is the strongest check applied: ``"sha256"`` (matched the registry checksum),
    ``"size"`` (matched the size announced by the server or known to the registry),
    ``"sidecar"`` (an already present file matched its own ``.sha256`` sidecar) or ``"none"``
    (nothing to check against).
    ``resumed_from`` is the byte offset the transfer resumed from (bytes already present in
    the ``.part`` file and kept; 0 for a fresh transfer or when the server ignored ``Range``).
    ``skipped`` is True when the final file was already present and valid (no network used).
    """

    dataset: str
    split: str
    path: Path
    n_bytes: int
    sha256: str
    verified: str
    resumed_from: int
    skipped: bool


def _split_info(dataset: str, split: str) -> DatasetInfo:
    """Registry entry of ``dataset``; ValueError for an unknown dataset or split."""
    info = get_dataset(dataset)
    if split not in info.splits:
        raise ValueError(
            f"unknown split {split!r} for dataset {dataset!r}; known: {', '.join(info.splits)}"
        )
    return info


def _paths(dest_dir: Path, dataset: str, split: str) -> tuple[Path, Path, Path]:
    """(final CSV, ``.part`` file, ``.sha256`` sidecar) of one split."""
    final = Path(dest_dir) / dataset / f"{split}.csv"
    return final, final.with_name(final.name + ".part"), final.with_name(final.name + ".sha256")


def _read_sidecar(sidecar: Path) -> str | None:
    """Digest recorded in a ``.sha256`` sidecar, or None when absent or unreadable."""
    try:
        fields = sidecar.read_text(encoding="utf-8").split()
    except OSError:
        return None
    return fields[0].lower() if fields else None


def _check_existing(
    final: Path, sidecar: Path, expected: str | None, dataset: str, split: str
) -> DownloadResult:
    """Validate an already present final file; DownloadError when it does not match.

    The reference digest is the registry checksum, else the file's own sidecar, if any.
    """
    actual = sha256_file(final)
    reference, kind = (expected, "sha256") if expected else (_read_sidecar(sidecar), "sidecar")
    if reference is None:
        kind = "none"
    elif actual != reference.lower():
        raise DownloadError(
            f"{final} exists but its sha256 {actual} does not match the expected {reference}; "
            "re-run with `force`=True to download it again"
        )
    if not sidecar.exists():
        _write_sidecar(sidecar, final.name, actual)
    return DownloadResult(dataset, split, final, final.stat().st_size, actual, kind, 0, True)


def _write_sidecar(sidecar: Path, filename: str, digest: str) -> None:
    """Write ``<digest>  <filename>`` (``sha256sum -c`` format) atomically."""
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(f"{digest}  {filename}\n", encoding="utf-8")
    os.replace(tmp, sidecar)


def _open(url: str, start: int, timeout: float) -> Any:
    """Open ``url`` (from byte ``start`` when > 0); returns the response.

    A 416 answer to a ranged request is returned (as the HTTPError object) for the caller to
    handle; every other failure raises DownloadError.
    """
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # scheme checked by caller
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start > 0:
            return exc
        raise DownloadError(
            f"HTTP {exc.code} {exc.reason} for {url}; check the dataset/split name and "
            "`base_url`, or fetch the file manually into the data directory"
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot reach {url}: {reason}; check the network connection or `base_url`"
        ) from exc


def _body_range(resp: Any, start: int, url: str) -> tuple[int, int | None]:
    """(byte offset at which the response body starts, total file size in bytes or None)."""
    length = resp.headers.get("Content-Length", "").strip()
    n_body = int(length) if length.isdigit() else None
    if resp.status != 206:  # a full answer (200), also when the server ignored Range
        return 0, n_body
    header = resp.headers.get("Content-Range", "").strip()
    match = _CONTENT_RANGE.fullmatch(header)
    if match is None or int(match["first"]) != start:
        raise DownloadError(
            f"unexpected Content-Range {header!r} from {url} for a request from byte {start}; "
            "re-run with `force`=True to restart the download"
        )
    if match["total"] != "*":
        return start, int(match["total"])
    return start, None if n_body is None else start + n_body


def _stream(
    resp: Any, part: Path, offset: int, total: int | None, *, chunk_size: int, progress: bool
) -> None:
    """Write the body of ``resp`` to ``part`` (appending when ``offset`` > 0)."""
    try:
        with (
            open(part, "ab" if offset else "wb") as fh,
            tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"{part.parent.name}/{part.name.removesuffix('.csv.part')}",
                disable=not progress, leave=False,
            ) as bar,
        ):  # fmt: skip
            while chunk := resp.read(chunk_size):
                fh.write(chunk)
                bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(
            f"transfer of {resp.url} interrupted ({exc}); the partial file {part} was kept, "
            "re-run to resume"
        ) from exc


def _transfer(
    url: str, part: Path, *, timeout: float, progress: bool, chunk_size: int
) -> tuple[int, int | None]:
    """Stream ``url`` into ``part``, resuming from its size; (resumed-from offset, total)."""
    start = part.stat().st_size if part.exists() else 0
    resp = _open(url, start, timeout)
    if resp.status == 416:  # the range starts at or past the end of the file
        match = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        resp.close()
        if match is not None and int(match["total"]) == start:
            return start, start  # the .part already holds the whole file
        log.info("%s: server refused range from byte %d; restarting from 0", url, start)
        part.unlink()
        start, resp = 0, _open(url, 0, timeout)
    with resp:
        offset, total = _body_range(resp, start, url)
        if offset != start:
            log.info("%s: server ignored Range; restarting from byte 0", url)
        _stream(resp, part, offset, total, chunk_size=chunk_size, progress=progress)
    return offset, total


def _verify(
    part: Path, url: str, total: int | None, expected: str | None, known: int | None = None
) -> tuple[str, str]:
    """Check ``part`` against the announced size ``total``, the registry's size ``known`` and
    the registry's sha256 ``expected``; (digest, verified).

    A short file is kept for resuming; a file too long or with a wrong digest is deleted.
    """
    size = part.stat().st_size
    for want, whose in ((total, "the server announced"), (known, "the registry expects")):
        if want is not None and size < want:
            raise DownloadError(
                f"incomplete download of {url}: got {size} of {want} bytes ({whose}; connection "
                f"dropped?); the partial file {part} was kept, re-run to resume"
            )
        if want is not None and size > want:
            part.unlink()
            raise DownloadError(
                f"download of {url} has {size} bytes but {whose} {want}; the partial file was "
                "deleted, re-run to download again (or check `base_url`)"
            )
    digest = sha256_file(part)
    if expected is not None and digest != expected.lower():
        part.unlink()
        raise DownloadError(
            f"sha256 mismatch for {url}: got {digest}, expected {expected}; the download was "
            "deleted. The upstream file may have changed or the transfer was corrupted; re-run, "
            "and if it persists check `base_url`"
        )
    sized = total is not None or known is not None
    return digest, "sha256" if expected is not None else ("size" if sized else "none")


def download_split(
    dataset: str,
    split: str,
    dest_dir: Path,
    *,
    base_url: str = CDVAE_BASE_URL,
    force: bool = False,
    timeout: float = 60.0,
    progress: bool = True,
    chunk_size: int = 1 << 16,
) -> DownloadResult:
    """Download one CDVAE split CSV to ``<dest_dir>/<dataset>/<split>.csv``.

    An existing final file that matches the known sha256 (or whose sha256 is unknown) is kept
    without touching the network (``skipped=True``); one that mismatches raises DownloadError
    unless ``force``. ``force`` always downloads afresh (discarding any ``.part``).
    ``timeout`` is the socket timeout in seconds; ``chunk_size`` the read size in bytes.
    Raises ValueError for an unknown dataset/split or a non-HTTP(S) ``base_url``.
    """
    info = _split_info(dataset, split)
    if not base_url.lower().startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    final, part, sidecar = _paths(dest_dir, dataset, split)
    expected = info.sha256.get(split)
    if final.exists() and not force:
        return _check_existing(final, sidecar, expected, dataset, split)
    if force:
        part.unlink(missing_ok=True)
        if final.exists() and expected and sha256_file(final) != expected.lower():
            final.unlink()  # never keep a known-bad file around, even if the download fails
            sidecar.unlink(missing_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    url = info.split_url(split, base_url)
    resumed_from, total = _transfer(
        url, part, timeout=timeout, progress=progress, chunk_size=chunk_size
    )
    digest, verified = _verify(part, url, total, expected, info.n_bytes.get(split))
    os.replace(part, final)
    _write_sidecar(sidecar, final.name, digest)
    log.info("downloaded %s (%d bytes, verified by %s)", final, final.stat().st_size, verified)
    return DownloadResult(
        dataset, split, final, final.stat().st_size, digest, verified, resumed_from, False
    )


def download_dataset(
    dataset: str,
    dest_dir: Path,
    *,
    splits: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[DownloadResult]:
    """Download ``splits`` (default: all splits) of ``dataset``; see :func:`download_split`.

    Split names are validated up front, so an unknown one fails before any transfer.
    """
    info = get_dataset(dataset)
    chosen = list(info.splits if splits is None else dict.fromkeys(splits))
    for split in chosen:
        _split_info(dataset, split)
    return [download_split(dataset, split, dest_dir, **kwargs) for split in chosen]
