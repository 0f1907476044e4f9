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
import contextvars
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

PROFILE = False  # Dask's worker profiler (off: see `open_client`)
TRIM_MEMORY = False  # Dask's aggressive malloc trimming in workers (off: see `open_client`)
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("structrepdiff_client", default=None)


def current_client():
    """The client of the innermost `open_client` block, or None (run locally)."""
    return _CURRENT.get()


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
    its local cluster) on exit; None for a serial run when ``spec`` is None. Inside the block
    it is also `current_client`, which the evaluator's process pool defers to."""
    if not spec:
        yield None
        return
    distributed = _require()
    cluster = None
    if spec.startswith("local:"):
        n = int(spec.split(":", 1)[1])
        if n < 1:
            raise ValueError(f"`scheduler` local:N needs N >= 1, got {spec!r}")
        import dask

        # the workers' statistical profiler samples every 10 ms while holding the GIL, which
        # slows our many small torch calls; the config travels to the worker processes
        env = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
        if TRIM_MEMORY:  # Dask's default trims freed memory at 64 kB, costly for small tensors
            env["MALLOC_TRIM_THRESHOLD_"] = 65536
        with dask.config.set({"distributed.worker.profile.enabled": PROFILE,
                              "distributed.nanny.pre-spawn-environ": env}):  # fmt: skip
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1,
                                               processes=True, dashboard_address=":0",
                                               silence_logs=40)  # fmt: skip
    client = distributed.Client(cluster if cluster is not None else spec)
    token = _CURRENT.set(client)
    try:
        yield client
    finally:
        _CURRENT.reset(token)
        client.close()
        if cluster is not None:
            cluster.close()


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


_INITIALISED: set[str] = set()


def _run_indexed(fn: Callable, initializer: Callable | None, initargs: tuple | None, key: str,
                 start: int, chunk: list) -> tuple[int, list]:  # fmt: skip
    _one_thread()
    if initializer is not None and key not in _INITIALISED:
        initializer(*(initargs or ()))
        _INITIALISED.add(key)
    return start, [fn(x) for x in chunk]


def map_in_order(client, fn: Callable, items: list, initializer: Callable | None = None,
                 initargs: tuple = (), chunk: int = 16, progress: bool = False,
                 desc: str = "") -> list:  # fmt: skip
    """[fn(x) for x in items] in input order on ``client``'s workers, ``initializer(*initargs)``
    run once per worker before its first item (``initargs`` travel once per worker)."""
    import uuid

    from tqdm.auto import tqdm

    distributed = _require()
    key = uuid.uuid4().hex
    args = client.scatter([initargs], broadcast=True)[0] if initializer is not None else None
    futures = [client.submit(_run_indexed, fn, initializer, args, key, k, items[k : k + chunk],
                             pure=False) for k in range(0, len(items), chunk)]  # fmt: skip
    out: list = [None] * len(items)
    bar = tqdm(total=len(items), disable=not progress, desc=desc, unit="crystal")
    try:
        for fut in distributed.as_completed(futures):
            start, results = fut.result()
            out[start : start + len(results)] = results
            bar.update(len(results))
    finally:
        bar.close()
        for f in futures:
            f.cancel()
    return out
