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

_CURRENT: contextvars.ContextVar = contextvars.ContextVar("structrepdiff_client", default=None)


def current_client():
    """The client of the innermost `open_client` block, or None (run locally)."""
    return _CURRENT.get()


def _require():
    try:
        import distributed
    except ImportError:
        raise ImportError("`scheduler` needs Dask: pip install 'structrepdiff[dask]' "
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
    import logging

    # Dask's scheduler and nannies log every start, cancel and close at INFO, and attach
    # harmless shutdown tracebacks to some of those records: keep warnings and errors only.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if spec.startswith("local:"):
        n = spec.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"`scheduler` local:N needs N >= 1, got {spec!r}")
        most = max_local_workers()
        if int(n) > most:
            raise ValueError(f"`scheduler` {spec}: this machine runs at most {most} local "
                             "workers (one per core, about 2 GB of memory each)")  # fmt: skip
        import dask

        # Local workers start without Dask's statistical profiler (it samples every 10 ms
        # holding the GIL) and without its MALLOC_TRIM_THRESHOLD_=65536 (glibc then returns
        # memory at every small tensor): with them one worker ran 1.25-1.6x slower than
        # serial (BENCHMARKS.md). The config travels to the worker processes.
        env = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
        with dask.config.set({"distributed.worker.profile.enabled": False,
                              "distributed.nanny.pre-spawn-environ": env}):  # fmt: skip
            cluster = distributed.LocalCluster(n_workers=int(n), threads_per_worker=1,
                                               processes=True, dashboard_address=":0",
                                               silence_logs=40)  # fmt: skip
    client = _connect(distributed, cluster if cluster is not None else spec)
    token = _CURRENT.set(client)
    try:
        yield client
    finally:
        _CURRENT.reset(token)
        client.close()
        if cluster is not None:
            cluster.close()


WORKER_MEMORY_GB = 2.0  # what one local worker (a descriptor or a potential) may need
CONNECT_TIMEOUT_S = 30  # a scheduler that has not answered by then is not one


def max_local_workers() -> int:
    """Local workers this machine holds: one per core, and ``WORKER_MEMORY_GB`` each."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        mem_gb = WORKER_MEMORY_GB * (cores or 1)
    return max(1, min(cores or 1, int(mem_gb // WORKER_MEMORY_GB)))


def _connect(distributed, target):
    """A client of ``target`` (a cluster or an address), or one line naming the address when
    it is not a Dask scheduler or does not answer within ``CONNECT_TIMEOUT_S``."""
    if not isinstance(target, str):
        return distributed.Client(target)
    import queue
    import threading

    box: queue.Queue = queue.Queue()

    def connect() -> None:  # Dask's own timeout does not bound the handshake with a server
        try:  # that waits for us to speak first (an HTTP port), so a thread with a deadline
            box.put(distributed.Client(target, timeout=CONNECT_TIMEOUT_S))
        except BaseException as exc:  # handed to the caller as one line
            box.put(exc)

    threading.Thread(target=connect, daemon=True).start()
    try:
        got = box.get(timeout=CONNECT_TIMEOUT_S + 5)
    except queue.Empty:
        got = TimeoutError(f"no Dask handshake within {CONNECT_TIMEOUT_S} s")
    if isinstance(got, BaseException):
        why = " ".join(f"{type(got).__name__}: {got}".split())[:160]
        raise OSError(f"`scheduler` {target} is not a Dask scheduler that answers ({why})")
    return got


@functools.cache
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


_INITIALISED: set[str] = set()


def _run(fn: Callable, chunk: list, start: int, per_item: bool,
         initializer: Callable | None = None, initargs: tuple | None = None,
         key: str = "") -> tuple[int, list]:  # fmt: skip
    """In a worker: ``initializer(*initargs)`` once per ``key``, then (start, ``fn`` of each
    item of ``chunk``) when ``per_item``, else (start, ``fn(chunk)``)."""
    _one_thread()
    if initializer is not None and key not in _INITIALISED:
        initializer(*(initargs or ()))
        _INITIALISED.add(key)
    return start, [fn(x) for x in chunk] if per_item else fn(chunk)


def _completed(futures: list) -> Iterator[tuple[int, list]]:
    """Results of ``futures`` as they complete; the rest are cancelled if the caller stops."""
    distributed = _require()
    try:
        for fut in distributed.as_completed(futures):
            yield fut.result()
    finally:
        for f in futures:
            if not f.done():
                f.cancel()


def map_chunks(client, fn: Callable[[list], list], chunks: Iterable[list]) -> Iterator[list]:
    """``fn(chunk)`` for every chunk, in completion order on ``client`` (in order, here, when
    ``client`` is None). ``fn`` must be picklable (a module-level function or a partial)."""
    chunks = list(chunks)
    if client is None:
        yield from (fn(c) for c in chunks)
        return
    futures = [client.submit(_run, fn, c, k, False, pure=False) for k, c in enumerate(chunks)]
    for _, result in _completed(futures):
        yield result


def map_in_order(client, fn: Callable, items: list, initializer: Callable | None = None,
                 initargs: tuple = (), chunk: int = 16, progress: bool = False,
                 desc: str = "") -> list:  # fmt: skip
    """[fn(x) for x in items] in input order on ``client``'s workers, ``initializer(*initargs)``
    run once per worker before its first item (``initargs`` travel once per worker)."""
    import uuid

    from tqdm.auto import tqdm

    key = uuid.uuid4().hex
    args = client.scatter([initargs], broadcast=True)[0] if initializer is not None else None
    futures = [client.submit(_run, fn, items[k : k + chunk], k, True, initializer, args, key,
                             pure=False) for k in range(0, len(items), chunk)]  # fmt: skip
    out: list = [None] * len(items)
    with tqdm(total=len(items), disable=not progress, desc=desc, unit="crystal") as bar:
        for start, results in _completed(futures):
            out[start : start + len(results)] = results
            bar.update(len(results))
    return out
