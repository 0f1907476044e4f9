"""Spreading per-crystal work over a Dask cluster (the optional ``dask`` extra).

``--scheduler local:N`` starts a `distributed.LocalCluster` of N single-threaded worker
processes for the run; any other value is the address of a running scheduler (for example one
started on a Slurm cluster with dask-jobqueue, see the README). Work is split into chunks that
are exactly the batches a serial run would make, and every crystal draws from its own seeded
generator, so a distributed run gives the same crystals as a serial one. The parent process
writes each result as its chunk comes back, so files stay incremental and resumable; a chunk
whose worker dies is run again on another worker by Dask.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def _require():
    try:
        import distributed
    except ImportError:
        raise ImportError("--scheduler needs Dask: pip install 'structrepdiff[dask]' "
                          "(distributed)") from None  # fmt: skip
    return distributed


@contextlib.contextmanager
def open_client(spec: str | None) -> Iterator[Any]:
    """A `distributed.Client` for ``spec`` ("local:N" or a scheduler address), closed (with
    its local cluster) on exit; None for a serial run when ``spec`` is None."""
    if not spec:
        yield None
        return
    distributed = _require()
    if spec.startswith("local:"):
        n = int(spec.split(":", 1)[1])
        if n < 1:
            raise ValueError(f"--scheduler local:N needs N >= 1, got {spec!r}")
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=40)  # fmt: skip
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    client = distributed.Client(spec)
    try:
        yield client
    finally:
        client.close()


@functools.lru_cache(maxsize=4)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _call(fn: Callable, chunk: list) -> list:
    _one_thread()
    return fn(chunk)


def map_chunks(client, fn: Callable[[list], list], chunks: Iterable[list]) -> Iterator[list]:
    """``fn(chunk)`` for every chunk, in completion order on ``client`` (in order, here, when
    ``client`` is None). ``fn`` must be picklable (a module-level function or a partial)."""
    chunks = list(chunks)
    if client is None:
        yield from (fn(c) for c in chunks)
        return
    distributed = _require()
    futures = [client.submit(_call, fn, c, pure=False) for c in chunks]
    try:
        for fut in distributed.as_completed(futures):
            yield fut.result()
    finally:
        for f in futures:
            f.cancel()
