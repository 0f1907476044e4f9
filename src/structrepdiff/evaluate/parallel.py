"""One way to spread evaluation work over processes: spawned workers, input order, progress."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
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
    on_crash: Callable[[T, str], R] | None = None,
) -> list[R]:
    """[fn(x) for x in items], in order, over ``workers`` spawned processes (default: all
    cores; 1 runs in this process). ``fn`` and ``initializer`` must be module-level functions;
    ``initializer(*initargs)`` runs once per worker (or once here when serial), so large
    shared data travels once per worker instead of once per item. Spawned, not forked, so a
    parent that has used torch cannot deadlock its workers. Inside `structrepdiff.cluster.
    open_client` (``--scheduler``) the work goes to the Dask workers instead, in the same order.

    A worker that dies (a crash in compiled code, the OOM killer) is replaced and the pool goes
    on: its chunk is redone one item at a time, and the item that kills a worker on its own
    gets ``on_crash(item, reason)`` (the reason names the signal), or, without ``on_crash``,
    a one-line RuntimeError. Nothing waits forever on a dead worker."""
    from structrepdiff.cluster import current_client, map_in_order

    client = current_client()  # inside `open_client` (--scheduler): the Dask workers
    if client is not None and items:
        return map_in_order(client, fn, list(items), initializer, initargs, progress=progress,
                            desc=desc)  # fmt: skip
    workers = max(1, min(workers or os.cpu_count() or 1, len(items) or 1))
    bar = tqdm(total=len(items), disable=not progress, desc=desc, unit="crystal")
    try:
        if workers == 1:
            if initializer is not None:
                initializer(*initargs)
            out = []
            for x in items:
                out.append(fn(x))
                bar.update(1)
            return out
        chunk = max(1, min(32, len(items) // (8 * workers)))
        return _Supervisor(fn, list(items), workers, chunk, (initializer, initargs), on_crash,
                           bar).run()  # fmt: skip
    finally:
        bar.close()


def worker_init(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """Run in each worker: leave Ctrl-C to the parent (which ends the pool), then the
    caller's initializer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def _worker_loop(fn, init, tasks, results, parent: int) -> None:
    """A worker: run chunks from ``tasks`` until told to stop or the parent is gone."""
    import queue

    worker_init(*init)
    while os.getppid() == parent:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            continue
        if task is None:
            return
        start, chunk = task
        try:
            results.put(("ok", start, [fn(x) for x in chunk]))
        except BaseException as exc:  # the parent re-raises it, as Pool.imap would
            results.put(("error", start, exc))


class _Supervisor:
    """Spawned workers, one chunk each at a time; a dead worker's chunk is redone item by
    item in a fresh worker, so the item that kills a worker alone is found and reported."""

    def __init__(self, fn, items, workers, chunk, init, on_crash, bar) -> None:
        from collections import deque
        from multiprocessing import get_context

        self.ctx = get_context("spawn")
        self.fn, self.items, self.n_workers, self.init = fn, items, workers, init
        self.on_crash, self.bar = on_crash, bar
        self.todo = deque((k, min(k + chunk, len(items))) for k in range(0, len(items), chunk))
        self.results: list = [None] * len(items)
        self.left = len(items)
        self.out = self.ctx.Queue()
        self.busy: dict[int, tuple] = {}  # worker slot -> (process, task queue, chunk or None)

    def _spawn(self, slot: int) -> None:
        tasks = self.ctx.Queue()
        args = (self.fn, self.init, tasks, self.out, os.getpid())
        proc = self.ctx.Process(target=_worker_loop, args=args, daemon=True)
        proc.start()
        self.busy[slot] = (proc, tasks, None)

    def _feed(self) -> None:
        for slot, (proc, tasks, job) in list(self.busy.items()):
            if job is None and self.todo:
                job = self.todo.popleft()
                tasks.put((job[0], self.items[job[0] : job[1]]))
                self.busy[slot] = (proc, tasks, job)

    def _take(self, msg) -> None:
        kind, start, value = msg
        if kind == "error":
            raise value
        self.results[start : start + len(value)] = value
        self.left -= len(value)
        self.bar.update(len(value))
        for slot, (proc, tasks, job) in self.busy.items():
            if job is not None and job[0] == start:
                self.busy[slot] = (proc, tasks, None)
                break

    def _reap(self) -> None:
        """Replace dead workers; their chunks go back item by item, or are reported."""
        for slot, (proc, _, job) in list(self.busy.items()):
            if proc.is_alive():
                continue
            self._drain()  # what it sent before dying counts
            job = self.busy[slot][2]
            if job is not None:
                self._lost(job, proc.exitcode)
            self._spawn(slot)

    def _lost(self, job: tuple[int, int], code: int | None) -> None:
        a, b = job
        if b - a > 1:
            self.todo.extendleft((k, k + 1) for k in reversed(range(a, b)))
            return
        why = f"the evaluation worker died ({_signal_name(code)})"
        if self.on_crash is None:
            raise RuntimeError(f"{why} on item {a}")
        self.results[a] = self.on_crash(self.items[a], why)
        self.left -= 1
        self.bar.update(1)

    def _drain(self) -> None:
        import queue

        while True:
            try:
                self._take(self.out.get_nowait())
            except queue.Empty:
                return

    def run(self) -> list:
        import queue

        try:
            for slot in range(self.n_workers):
                self._spawn(slot)
            while self.left > 0:
                self._feed()
                try:
                    self._take(self.out.get(timeout=0.2))
                except queue.Empty:
                    self._reap()
            return self.results
        finally:
            for proc, _, _ in self.busy.values():
                if proc.is_alive():
                    proc.terminate()
                proc.join(timeout=5)


def _signal_name(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
