"""Tests of the resumable, verified CDVAE CSV download, against a local HTTP server only."""

from __future__ import annotations

import argparse
import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from structrepdiff.cli import data_cmd
from structrepdiff.data.download import (
    DownloadError,
    download_dataset,
    download_split,
)
from structrepdiff.data.registry import get_dataset


def _csv(tag: str, n_rows: int) -> bytes:
    rows = [f'{i},{tag}-{i},{i * 0.125:.3f},"POSCAR line {i}"' for i in range(n_rows)]
    return ("idx,material_id,energy,cif\n" + "\n".join(rows) + "\n").encode()


FILES = {
    "/perov_5/train.csv": _csv("perov-train", 300),
    "/perov_5/val.csv": _csv("perov-val", 200),
    "/perov_5/test.csv": _csv("perov-test", 150),
    "/mp_20/val.csv": _csv("mp-val", 250),
}
PEROV_VAL = FILES["/perov_5/val.csv"]
MP_VAL = FILES["/mp_20/val.csv"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ServerState:
    """What the handler serves and how it misbehaves; ``requests`` records (path, headers)."""

    files: dict[str, bytes] = field(default_factory=lambda: dict(FILES))
    ignore_range: bool = False
    truncate_at: int | None = None  # send only this many body bytes, then drop the connection
    corrupt: bool = False  # serve same-size but wrong bytes
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # silence the test output
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.path, dict(self.headers)))
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        if state.corrupt:
            data = data[::-1]
        range_header = self.headers.get("Range")
        start = 0
        if range_header and not state.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header)[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.truncate_at is not None:
            body = body[: state.truncate_at]
            self.close_connection = True
        self.wfile.write(body)


@dataclass
class Server:
    url: str
    state: ServerState

    def ranges(self) -> list[str | None]:
        return [headers.get("Range") for _, headers in self.state.requests]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", httpd.state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def perov_val_sha(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the registry's perov_5 val checksum the one of the served file."""
    digest = _sha(PEROV_VAL)
    monkeypatch.setitem(get_dataset("perov_5").sha256, "val", digest)
    monkeypatch.setitem(get_dataset("perov_5").n_bytes, "val", len(PEROV_VAL))
    return digest


def _fetch(server: Server, tmp_path: Path, dataset: str = "perov_5", split: str = "val", **kw):
    return download_split(dataset, split, tmp_path, base_url=server.url, progress=False, **kw)


def test_fresh_download_verified_by_sha256(server, tmp_path, perov_val_sha):
    result = _fetch(server, tmp_path)
    final = tmp_path / "perov_5" / "val.csv"
    assert result.path == final
    assert final.read_bytes() == PEROV_VAL
    assert result.n_bytes == len(PEROV_VAL)
    assert result.sha256 == perov_val_sha
    assert (result.verified, result.resumed_from, result.skipped) == ("sha256", 0, False)
    assert (tmp_path / "perov_5" / "val.csv.sha256").read_text() == f"{perov_val_sha}  val.csv\n"
    assert not (tmp_path / "perov_5" / "val.csv.part").exists()
    assert [p for p, _ in server.state.requests] == ["/perov_5/val.csv"]
    assert server.ranges() == [None]


def test_unknown_checksum_is_verified_by_size(server, tmp_path):
    assert "val" not in get_dataset("mp_20").sha256
    result = _fetch(server, tmp_path, "mp_20", "val")
    assert result.verified == "size"
    assert (tmp_path / "mp_20" / "val.csv").read_bytes() == MP_VAL
    assert result.sha256 == _sha(MP_VAL)


def test_resume_sends_range_and_completes(server, tmp_path, perov_val_sha):
    n = 1000
    part = tmp_path / "perov_5" / "val.csv.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PEROV_VAL[:n])
    result = _fetch(server, tmp_path)
    assert server.ranges() == [f"bytes={n}-"]
    assert result.resumed_from == n
    assert result.verified == "sha256"
    assert result.path.read_bytes() == PEROV_VAL
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path, perov_val_sha):
    server.state.ignore_range = True
    part = tmp_path / "perov_5" / "val.csv.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that must be discarded")  # would corrupt the file if appended to
    result = _fetch(server, tmp_path)
    assert server.ranges() == [f"bytes={len(b'garbage that must be discarded')}-"]
    assert result.resumed_from == 0
    assert result.path.read_bytes() == PEROV_VAL


def test_416_with_complete_part_just_verifies(server, tmp_path, perov_val_sha):
    part = tmp_path / "perov_5" / "val.csv.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PEROV_VAL)
    result = _fetch(server, tmp_path)
    assert server.ranges() == [f"bytes={len(PEROV_VAL)}-"]
    assert (result.resumed_from, result.verified) == (len(PEROV_VAL), "sha256")
    assert result.path.read_bytes() == PEROV_VAL


def test_416_with_oversized_part_restarts(server, tmp_path):
    part = tmp_path / "mp_20" / "val.csv.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * (len(MP_VAL) + 10))
    result = _fetch(server, tmp_path, "mp_20", "val")
    assert server.ranges() == [f"bytes={len(MP_VAL) + 10}-", None]
    assert (result.resumed_from, result.verified) == (0, "size")
    assert result.path.read_bytes() == MP_VAL


def test_truncated_transfer_raises_then_resumes(server, tmp_path):
    server.state.truncate_at = 700
    with pytest.raises(DownloadError, match=r"incomplete download .*got 700 of \d+ bytes"):
        _fetch(server, tmp_path, "mp_20", "val")
    final = tmp_path / "mp_20" / "val.csv"
    part = tmp_path / "mp_20" / "val.csv.part"
    assert not final.exists()
    assert not (tmp_path / "mp_20" / "val.csv.sha256").exists()
    assert part.read_bytes() == MP_VAL[:700]  # kept for resuming
    server.state.truncate_at = None
    result = _fetch(server, tmp_path, "mp_20", "val")
    assert server.ranges()[-1] == "bytes=700-"
    assert result.resumed_from == 700
    assert final.read_bytes() == MP_VAL


def test_wrong_checksum_raises_and_leaves_nothing(server, tmp_path, perov_val_sha):
    server.state.corrupt = True
    with pytest.raises(DownloadError, match="sha256 mismatch") as excinfo:
        _fetch(server, tmp_path)
    assert perov_val_sha in str(excinfo.value)
    assert not (tmp_path / "perov_5" / "val.csv").exists()
    assert not (tmp_path / "perov_5" / "val.csv.part").exists()
    assert not (tmp_path / "perov_5" / "val.csv.sha256").exists()


def test_404_names_the_url(server, tmp_path):
    del server.state.files["/mp_20/val.csv"]
    with pytest.raises(DownloadError, match="HTTP 404") as excinfo:
        _fetch(server, tmp_path, "mp_20", "val")
    assert f"{server.url}mp_20/val.csv" in str(excinfo.value)
    assert not (tmp_path / "mp_20" / "val.csv").exists()


def test_existing_valid_file_skipped_without_request(server, tmp_path, perov_val_sha):
    first = _fetch(server, tmp_path)
    server.state.requests.clear()
    again = _fetch(server, tmp_path)
    assert server.state.requests == []
    assert (again.skipped, again.verified, again.sha256) == (True, "sha256", perov_val_sha)
    assert again.path == first.path and again.n_bytes == len(PEROV_VAL)
    # unknown registry checksum: the file is checked against its own sidecar
    _fetch(server, tmp_path, "mp_20", "val")
    server.state.requests.clear()
    again = _fetch(server, tmp_path, "mp_20", "val")
    assert server.state.requests == []
    assert (again.skipped, again.verified) == (True, "sidecar")


def test_existing_bad_file_raises_unless_force(server, tmp_path, perov_val_sha):
    final = tmp_path / "perov_5" / "val.csv"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"stale contents\n")
    with pytest.raises(DownloadError, match="`force`=True"):
        _fetch(server, tmp_path)
    assert server.state.requests == []
    assert final.read_bytes() == b"stale contents\n"
    result = _fetch(server, tmp_path, force=True)
    assert not result.skipped and result.verified == "sha256"
    assert final.read_bytes() == PEROV_VAL


def test_force_redownloads_a_valid_file(server, tmp_path, perov_val_sha):
    _fetch(server, tmp_path)
    server.state.requests.clear()
    result = _fetch(server, tmp_path, force=True)
    assert len(server.state.requests) == 1
    assert not result.skipped
    assert result.path.read_bytes() == PEROV_VAL


def test_unknown_split_or_scheme_raises_value_error(server, tmp_path):
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        _fetch(server, tmp_path, "perov_5", "valid")
    with pytest.raises(ValueError, match="unknown split"):
        download_dataset("perov_5", tmp_path, splits=["val", "nope"], base_url=server.url)
    with pytest.raises(ValueError, match="http"):
        download_split("mp_20", "val", tmp_path, base_url="ftp://example.org/data")
    assert server.state.requests == []
    assert not any(tmp_path.iterdir())


def test_download_dataset_all_splits(server, tmp_path, perov_val_sha, monkeypatch):
    info = get_dataset("perov_5")
    for split in ("train", "test"):
        monkeypatch.setitem(info.sha256, split, _sha(FILES[f"/perov_5/{split}.csv"]))
        monkeypatch.setitem(info.n_bytes, split, len(FILES[f"/perov_5/{split}.csv"]))
    results = download_dataset("perov_5", tmp_path, base_url=server.url, progress=True)
    assert [r.split for r in results] == ["train", "val", "test"]
    assert [r.verified for r in results] == ["sha256", "sha256", "sha256"]
    for r in results:
        assert r.path.read_bytes() == FILES[f"/perov_5/{r.split}.csv"]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    data_cmd.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_downloads_into_data_dir(server, tmp_path, capsys, perov_val_sha):
    dest = tmp_path / "new" / "dir"
    argv = ["data", "download", "perov_5", "--split", "val", "--data-dir", str(dest)]
    rc = _cli([*argv, "--base-url", server.url, "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert (dest / "perov_5" / "val.csv").read_bytes() == PEROV_VAL
    assert str(dest / "perov_5" / "val.csv") in out
    assert f"{len(PEROV_VAL)} bytes" in out and "verified: sha256" in out
    assert "1 split(s)" in out
    rc = _cli([*argv, "--base-url", server.url, "--no-progress"])
    assert rc == 0 and "already present, skipped" in capsys.readouterr().out


def test_cli_destination_from_env_then_default(server, tmp_path, monkeypatch, capsys):
    argv = ["data", "download", "mp_20", "--split", "val", "--base-url", server.url]
    monkeypatch.setenv("STRUCTREPDIFF_DATA", str(tmp_path / "env"))
    assert _cli([*argv, "--no-progress"]) == 0
    assert (tmp_path / "env" / "mp_20" / "val.csv").read_bytes() == MP_VAL
    monkeypatch.delenv("STRUCTREPDIFF_DATA")
    monkeypatch.setattr(data_cmd, "DEFAULT_DOWNLOAD_DIR", tmp_path / "cache")
    assert _cli([*argv, "--no-progress"]) == 0
    assert (tmp_path / "cache" / "mp_20" / "val.csv").read_bytes() == MP_VAL
    capsys.readouterr()


def test_cli_404_returns_nonzero_with_message(server, tmp_path, capsys):
    del server.state.files["/mp_20/val.csv"]
    argv = ["data", "download", "mp_20", "--split", "val", "--data-dir", str(tmp_path)]
    rc = _cli([*argv, "--base-url", server.url, "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err.startswith("error: HTTP 404")
    assert f"{server.url}mp_20/val.csv" in captured.err
    assert not (tmp_path / "mp_20" / "val.csv").exists()


def test_unreachable_host_raises_download_error(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    with socket.socket() as sock:  # find a free port, then close it: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match=f"cannot reach http://127.0.0.1:{port}/mp_20/val.csv"):
        download_split(
            "mp_20", "val", tmp_path, base_url=f"http://127.0.0.1:{port}", progress=False
        )
    assert not (tmp_path / "mp_20" / "val.csv").exists()


def test_registry_knows_every_original_split():
    # shared/data/README.md: every original CDVAE CSV but MP-20 val (only a converted copy)
    for name in ("mp_20", "perov_5", "carbon_24"):
        info = get_dataset(name)
        for split in info.splits:
            if (name, split) == ("mp_20", "val"):
                assert split not in info.sha256 and split not in info.n_bytes
                continue
            assert len(info.sha256[split]) == 64 and info.n_bytes[split] > 1_000_000


@pytest.mark.parametrize("dataset", ["perov_5", "carbon_24"])
def test_registry_matches_the_byte_identical_local_copies(dataset):
    # perov_5 / carbon_24 val and test in shared/data are the originals, gzipped: an oracle
    import gzip

    from structrepdiff.data.paths import DataNotFoundError, resolve_data_dir

    try:
        root = resolve_data_dir()
    except DataNotFoundError:
        pytest.skip("no data directory")
    info = get_dataset(dataset)
    for split in ("val", "test"):
        path = root / dataset / f"{split}.csv.gz"
        if not path.is_file():
            pytest.skip(f"{path} not present")
        data = gzip.decompress(path.read_bytes())
        assert (len(data), _sha(data)) == (info.n_bytes[split], info.sha256[split])


def test_a_file_shorter_than_the_registry_says_is_kept_for_resume(server, tmp_path, monkeypatch):
    # a server that announces no length cannot hide a truncated file from the registry
    info = get_dataset("perov_5")
    monkeypatch.setitem(info.sha256, "val", _sha(PEROV_VAL + b"x" * 10))
    monkeypatch.setitem(info.n_bytes, "val", len(PEROV_VAL) + 10)
    with pytest.raises(DownloadError, match="registry expects"):
        _fetch(server, tmp_path)
    assert (tmp_path / "perov_5" / "val.csv.part").stat().st_size == len(PEROV_VAL)
    assert not (tmp_path / "perov_5" / "val.csv").exists()
