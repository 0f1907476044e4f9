"""One way to spread evaluation work over processes: spawned workers, input order, progress."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from multiprocessing import get_context
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int | None = None,
    progress: bool = True,
    desc: str = "evaluate",
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> list[R]:
    """[fn(x) for x in items], in order, over ``workers`` spawned processes (default: all
    cores; 1 runs in this process). ``fn`` and ``initializer`` must be module-level functions;
    ``initializer(*initargs)`` runs once per worker (or once here when serial), so large
    shared data travels once per worker instead of once per item. Spawned, not forked, so a
    parent that has used torch cannot deadlock its workers. Inside `structrepdiff.cluster.
    open_client` (``--scheduler``) the work goes to the Dask workers instead, in the same order."""
    from structrepdiff.cluster import current_client, map_in_order

    client = current_client()  # inside `open_client` (--scheduler): the Dask workers
    if client is not None and items:
        return map_in_order(client, fn, list(items), initializer, initargs, progress=progress,
                            desc=desc)  # fmt: skip
    workers = max(1, min(workers or os.cpu_count() or 1, len(items) or 1))
    bar = dict(total=len(items), disable=not progress, desc=desc, unit="crystal")
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        return [fn(x) for x in tqdm(items, **bar)]
    chunk = max(1, min(32, len(items) // (8 * workers)))
    # multiprocessing's Pool, not ProcessPoolExecutor: leaving its block on an exception
    # (Ctrl-C, or SIGTERM turned into one by the CLI) terminates the workers at once
    # instead of waiting for the queued work, so no worker outlives its parent.
    with get_context("spawn").Pool(workers, initializer=worker_init,
                                   initargs=(initializer, initargs)) as pool:  # fmt: skip
        return list(tqdm(pool.imap(fn, items, chunksize=chunk), **bar))


def worker_init(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """Run in each worker: leave Ctrl-C to the parent (which ends the pool), then the
    caller's initializer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
