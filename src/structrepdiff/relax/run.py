"""File-level relaxation: any predictions `load_predictions` reads -> relaxed CIFs,
``relaxed.extxyz`` and ``summary.csv`` in one folder.

Rows are written as crystals finish (CIF atomically, one flushed CSV row each), so a stopped
run resumes: ids already in summary.csv are not redone. ``relaxed.extxyz`` is rebuilt from
the finished CIFs at the end of every run. ``workers`` > 1 spreads crystals over processes,
each loading the potential once, one torch thread each.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from structrepdiff.data.atomic import atomic_write
from structrepdiff.data.predictions import Prediction, load_predictions
from structrepdiff.data.run_folder import (
    RELAX_CONFIG,
    RELAX_FIELDS,
    RELAXED_EXTXYZ,
    SUMMARY,
    SummaryWriter,
    check_resume,
    clear_run,
    dedupe_ids,
    is_relax_output,
    read_summary,
    run_lock,
    safe_name,
    same_path,
    summary_extxyz,
)
from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.core import RelaxResult, relax_structure
from structrepdiff.relax.potential import potential_version


@dataclass(frozen=True)
class RelaxJob:
    """One `structrepdiff relax` run."""

    pred: Path
    out: Path
    config: RelaxConfig = field(default_factory=RelaxConfig)
    workers: int | None = None  # processes; None: one per core, no more than batches
    limit: int | None = None
    force: bool = False
    progress: bool = True


@dataclass
class RelaxSummary:
    counts: dict[str, int]
    done_before: int
    seconds: float
    out: Path


_CALC = None  # the potential of this worker process (a calculator, or a BatchPotential)
_CALC_CONFIG: RelaxConfig | None = None  # the settings it was loaded with


def _init_worker(config: RelaxConfig, in_pool: bool = False) -> None:
    global _CALC, _CALC_CONFIG
    import signal

    import torch

    if in_pool:  # Ctrl-C is the parent's to handle: it terminates the pool
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    from structrepdiff.relax.potential import load_batch_potential, load_calculator

    torch.set_num_threads(1)
    load = load_batch_potential if config.driver == "batched" else load_calculator
    _CALC, _CALC_CONFIG = load(config.potential, config.device), config


def _no_input(pred: Prediction) -> RelaxResult:
    return RelaxResult("rejected", None, reason=f"no input crystal ({pred.reason})")


def _relax_one(task: tuple[Prediction, RelaxConfig]) -> tuple[str, RelaxResult, float]:
    pred, config = task
    t0 = time.perf_counter()
    if pred.structure is None:
        res = _no_input(pred)
    else:
        res = relax_structure(pred.structure, _CALC, config)
    return pred.id, res, time.perf_counter() - t0


def _relax_many(tasks: list[tuple[Prediction, RelaxConfig]]
                ) -> Iterator[tuple[str, RelaxResult, float]]:  # fmt: skip
    """Relax ``tasks`` (one config) with this process's potential, as each finishes."""
    if not tasks:
        return
    config = tasks[0][1]
    if config.driver != "batched":
        yield from map(_relax_one, tasks)
        return
    from structrepdiff.relax.batched import relax_batched

    for p, _ in tasks:
        if p.structure is None:
            yield p.id, _no_input(p), 0.0
    items = ((p.id, p.structure) for p, _ in tasks if p.structure is not None)
    yield from relax_batched(items, _CALC, config)


def _relax_list(tasks: list[tuple[Prediction, RelaxConfig]]) -> list:
    return list(_relax_many(tasks))


def _prepare(job: RelaxJob) -> dict[str, dict[str, str]]:
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path, summary = out / RELAX_CONFIG, out / SUMMARY
    settings = {"config": job.config.to_dict(), "pred": same_path(job.pred),
                "potential_version": potential_version(job.config.potential)}  # fmt: skip
    if job.force:
        clear_run(summary, RELAXED_EXTXYZ)
    else:
        check_resume(out, RELAX_CONFIG, settings, "a relaxation")
    atomic_write(cfg_path, lambda p: p.write_text(json.dumps(settings, indent=2)), force=True)
    return read_summary(summary)


def relax_chunk(tasks: list[tuple[Prediction, RelaxConfig]]) -> list:
    """[(id, RelaxResult, seconds)] for one chunk of tasks, in a process that loads its
    potential on first use (how Dask workers run them, see `structrepdiff.cluster`)."""
    if tasks and tasks[0][1] != _CALC_CONFIG:
        _init_worker(tasks[0][1])
    return _relax_list(tasks)


def resolve_workers(workers: int | None, n_tasks: int, chunk: int) -> int:
    """``workers``, or when None one process per core (`cluster.max_local_workers`) but no
    more than there are chunks of ``chunk`` crystals: a process costs seconds to start."""
    if workers is not None:
        return workers
    from structrepdiff.cluster import max_local_workers

    return max(1, min(max_local_workers(), -(-n_tasks // max(chunk, 1))))


def _chunks(tasks: list, size: int) -> list[list]:
    return [tasks[k : k + size] for k in range(0, len(tasks), size)]


def _results(tasks: list, job: RelaxJob, client=None
             ) -> Iterator[tuple[str, RelaxResult, float]]:  # fmt: skip
    """Results as crystals finish: in this process (one batch in flight), or chunks of
    ``batch_size`` crystals (4 with the per-crystal driver) over processes or Dask workers."""
    size = job.config.batch_size if job.config.driver == "batched" else 4
    if client is not None:
        from structrepdiff.cluster import map_chunks

        for results in map_chunks(client, relax_chunk, _chunks(tasks, size)):
            yield from results
        return
    workers = resolve_workers(job.workers, len(tasks), size)
    if workers <= 1:
        _init_worker(job.config)
        yield from _relax_many(tasks)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(job.config, True)) as pool:
        if job.config.driver == "batched":
            for results in pool.imap_unordered(_relax_list, _chunks(tasks, size)):
                yield from results
        else:
            yield from pool.imap_unordered(_relax_one, tasks)


def _row(rid: str, res: RelaxResult, seconds: float, cif: str) -> dict[str, str]:
    def f(x, fmt=".6f"):
        return "" if x is None else format(x, fmt)

    return {"id": rid, "status": res.status, "energy_before": f(res.energy_before),
            "energy_after": f(res.energy_after), "steps": str(res.steps),
            "converged": str(int(res.status == "converged")), "rmsd": f(res.rmsd, ".4f"),
            "volume_ratio": f(res.volume_ratio, ".4f"), "seconds": f"{seconds:.3f}",
            "reason": res.reason, "cif": cif}  # fmt: skip


def write_extxyz(out: Path) -> int:
    """Rebuild ``out/relaxed.extxyz`` from the CIFs named in summary.csv; returns the number
    of frames. Each frame carries its id and relaxed energy in ``info``."""
    return summary_extxyz(out, RELAXED_EXTXYZ, lambda r: {
        "id": r["id"], "energy_per_atom": float(r["energy_after"])})  # fmt: skip


def unique_ids(preds: list[Prediction]) -> list[Prediction]:
    """``preds`` with a repeated id renamed ``<id>~<k>`` (`dedupe_ids`) and the renaming noted
    in its reason, so no crystal overwrites another's file or row."""
    out = []
    for p, rid in zip(preds, dedupe_ids([p.id for p in preds]), strict=True):
        if rid != p.id:
            note = f"duplicate id {p.id!r} renamed"
            p = Prediction(rid, p.structure, f"{p.reason}; {note}" if p.reason else note)
        out.append(p)
    return out


def run_relax(job: RelaxJob, client=None) -> RelaxSummary:
    """Relax every prediction at ``job.pred`` not yet in ``job.out/summary.csv`` (over a Dask
    ``client``'s workers, a batch a task, when given; else ``job.workers`` processes).
    The output folder is locked for the run (`run_lock`)."""
    with run_lock(job.out):
        return _run_relax(job, client)


def _run_relax(job: RelaxJob, client=None) -> RelaxSummary:
    from structrepdiff.device import check_device

    t0 = time.perf_counter()
    check_device(job.config.device)  # a device this machine lacks: one line, nothing written
    preds = load_predictions(job.pred)  # first: a bad --pred leaves no output folder behind
    from structrepdiff.relax import potential  # looked up here so tests can stand in for it

    potential.require_potential(job.config.potential)  # nor does a missing potential
    done = _prepare(job)
    todo = unique_ids(preds[: job.limit] if job.limit else preds)
    tasks = [(p, job.config) for p in todo if p.id not in done]
    out, counts = Path(job.out), {}
    writer = SummaryWriter(out / SUMMARY, RELAX_FIELDS)
    try:
        bar = tqdm(total=len(tasks), disable=not job.progress, desc="relax", unit="crystal")
        for rid, res, sec in _results(tasks, job, client):
            cif = ""
            if res.structure is not None:
                cif = f"{safe_name(rid)}.cif"
                atomic_write(out / cif, lambda p, s=res.structure: s.to(filename=str(p),
                             fmt="cif"), force=True, suffix=".cif")  # fmt: skip
            writer.write(**_row(rid, res, sec, cif))
            counts[res.status] = counts.get(res.status, 0) + 1
            bar.update(1)
            bar.set_postfix(counts)
        bar.close()
    finally:
        writer.close()
    write_extxyz(out)
    return RelaxSummary(counts, len(done), time.perf_counter() - t0, out)


def ensure_relaxed(pred: str | os.PathLike, out: str | os.PathLike, config: RelaxConfig,
                   workers: int | None = None, progress: bool = True) -> Path:  # fmt: skip
    """``pred`` when it is a `relax` output, else the folder ``out`` where its crystals (CIFs,
    a `generate` / `reconstruct` folder, .extxyz, CSV) are relaxed with ``config`` first
    (resumable; ``max_steps`` 0 gives single points)."""
    if is_relax_output(pred):
        return Path(pred)
    run_relax(RelaxJob(Path(pred), Path(out), config, workers, progress=progress))
    return Path(out)
