"""File-level reconstruction: R vectors (.npz) -> one CIF per crystal and summary.csv.

Results are written as they come (CIF atomically, one flushed CSV row per crystal), so an
interrupted run resumes where it stopped: ids already in summary.csv are not redone.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from structrepdiff.data.run_folder import (  # noqa: F401  (re-exported)
    GENERATED_EXTXYZ,
    RECONSTRUCT_CONFIG,
    RECONSTRUCT_FIELDS,
    SUMMARY,
    SummaryWriter,
    check_resume,
    clear_run,
    dedupe_ids,
    read_summary,
    run_lock,
    safe_name,
    same_path,
    summary_extxyz,
)
from structrepdiff.features import atomic_write, load_features
from structrepdiff.reconstruct.config import JOB_BATCH_SIZE, JOB_DEVICE, ReconstructConfig
from structrepdiff.reconstruct.optimize import Outcome, Target, rank_starts, reconstruct_batch
from structrepdiff.reconstruct.symmetric import (
    SymmetricConfig,
    SymTarget,
    SymTemplates,
    reconstruct_symmetric,
)
from structrepdiff.reconstruct.templates import TemplateSet
from structrepdiff.representation.decode import decode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconstructJob:
    """One `structrepdiff reconstruct` run."""

    representations: Path
    out: Path
    config: ReconstructConfig = field(default_factory=ReconstructConfig)
    limit: int | None = None
    batch_size: int = JOB_BATCH_SIZE
    force: bool = False
    progress: bool = True
    templates: Path | None = None
    device: str = JOB_DEVICE


@dataclass
class ReconstructSummary:
    counts: dict[str, int]
    done_before: int
    seconds: float
    out: Path


def _prepare_out(job: ReconstructJob) -> dict[str, dict[str, str]]:
    """Create the output folder, check or write its config, return rows already done."""
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path, summary = out / RECONSTRUCT_CONFIG, out / SUMMARY
    settings = {
        "config": job.config.to_dict(),
        "representations": same_path(job.representations),
        "templates": same_path(job.templates),
        # a crystal's result depends (to ~1e-3 in the loss) on the batch it shares: float32
        # reductions over the batch. Recorded, so that a reproduction uses the same batches.
        "batch_size": job.batch_size,
    }
    if job.force:
        clear_run(summary, GENERATED_EXTXYZ)
    else:
        check_resume(out, RECONSTRUCT_CONFIG, settings)
    atomic_write(cfg_path, lambda p: p.write_text(json.dumps(settings, indent=2)), force=True)
    return read_summary(summary)


def outcome_structure(o: Outcome):
    """The reconstructed crystal of ``o`` as a pymatgen Structure."""
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(o.cell), o.numbers.tolist(), o.positions, coords_are_cartesian=True)


def _write_outcome(o: Outcome, out: Path, seconds: float, writer: SummaryWriter) -> str:
    s = outcome_structure(o)
    name = f"{safe_name(o.id)}.cif"
    atomic_write(out / name, lambda p: s.to(filename=str(p), fmt="cif"), force=True, suffix=".cif")
    status = "converged" if o.converged else "not_converged"
    writer.write(
        id=o.id,
        status=status,
        loss=f"{o.loss:.6e}",
        converged=int(o.converged),
        steps=o.steps,
        seconds=f"{seconds:.3f}",
        cif=name,
        space_group=getattr(o, "sg", ""),
    )
    return status


def template_starts(
    targets: list[Target], templates: TemplateSet, ead, config: ReconstructConfig,
    device: str = "cpu",
) -> list[list]:  # fmt: skip
    """Per target, up to ``config.trials`` template starts (fractional (n, 3)), best first;
    a template with the target's own id is never used."""
    return [
        rank_starts(
            t,
            [f for _, f in templates.candidates(t.numbers, t.lattice, exclude=t.id)],
            ead,
            config,
            keep=config.trials,
            device=device,
        )
        for t in targets
    ]


def _reconstruct_safely(
    batch: list[Target], ead, config: ReconstructConfig, templates: TemplateSet | None = None,
    device: str = "cpu",
):  # fmt: skip
    """Yield (Outcome, seconds per crystal), or ((id, reason), seconds) for a crystal that
    raised; a failing batch is retried crystal by crystal so one bad target spoils nothing."""
    tb = time.perf_counter()
    try:
        if isinstance(batch[0], SymTarget):
            outcomes = _symmetric_batch(batch, ead, config, templates)
        else:
            starts = (None if templates is None
                      else template_starts(batch, templates, ead, config, device))  # fmt: skip
            outcomes = reconstruct_batch(batch, ead, config, starts, device=device)
    except (ValueError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        if len(batch) == 1:
            yield (batch[0].id, f"{type(exc).__name__}: {exc}"), time.perf_counter() - tb
            return
        for t in batch:
            yield from _reconstruct_safely([t], ead, config, templates, device)
        return
    per = (time.perf_counter() - tb) / len(batch)
    for o in outcomes:
        yield o, per


def _symmetric_batch(batch: list[SymTarget], ead, config: ReconstructConfig,
                     templates: SymTemplates | None) -> list:  # fmt: skip
    """Targets with their group and pattern, reconstructed inside the group (template starts
    of the same group and pattern when ``templates``); a plain config gains the symmetric
    settings' defaults."""
    if not isinstance(config, SymmetricConfig):
        config = SymmetricConfig(**config.to_dict())
    if templates is not None and not isinstance(templates, SymTemplates):
        raise ValueError("reconstruction inside space groups needs templates on Wyckoff "
                         "parameters (a describe_split .json), not free-path ones")  # fmt: skip
    starts = None if templates is None else [templates.starts(st) for st in batch]
    return reconstruct_symmetric(batch, ead, config, starts)


def with_symmetry(pairs, choices) -> Iterator[tuple[str, Target | SymTarget | str]]:
    """`targets_from` pairs with each decodable target given its (group, pattern) from
    ``choices`` (same order; a reason string there replaces the target)."""
    for (rid, t), c in zip(pairs, choices, strict=True):
        if isinstance(t, str) or isinstance(c, str):
            yield rid, t if isinstance(t, str) else c
        else:
            yield rid, SymTarget(t, c[0], c[1])


def targets_from(ids: list[str], decoded: list) -> Iterator[tuple[str, Target | str]]:
    """(id, Target) for a decodable vector, (id, reason) for one that is not."""
    for rid, d in zip(ids, decoded, strict=True):
        yield rid, (Target(rid, d.numbers, d.lattice, d.ead_max, d.ead_min, d.d_min) if d.ok
                    else d.reason)  # fmt: skip


def decodable_targets(fs) -> list[Target]:
    """The Targets of a FeatureSet's rows that decode (the others are dropped; `targets_from`
    gives their reasons), in row order."""
    return [t for _, t in targets_from(fs.ids, decode(fs.R, fs.rep)) if not isinstance(t, str)]


def _load_templates(templates):
    """A TemplateSet (.npz) or SymTemplates (a `describe_split` .json) from its path."""
    if templates is None or isinstance(templates, TemplateSet | SymTemplates):
        return templates
    st = Path(templates).stat()  # the cache key includes the file's size and time
    return _cached_template_file(str(templates), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _cached_template_file(path: str, size: int, mtime_ns: int) -> TemplateSet | SymTemplates:
    if path.endswith(".json"):
        from structrepdiff.symmetry.analyze import load_description

        return SymTemplates(load_description(path))
    return TemplateSet.load(path)


def reconstruct_chunk(batch: list[Target], ead, config: ReconstructConfig,
                      templates: TemplateSet | Path | str | None = None,
                      device: str = "cpu") -> list:  # fmt: skip
    """One batch, as `reconstruct_targets` yields it: [(Outcome or (id, reason), seconds)].
    A module-level function taking only picklable arguments, so Dask workers can run it."""
    return list(_reconstruct_safely(batch, ead, config, _load_templates(templates), device))


def reconstruct_targets(
    todo: list[Target], ead, config: ReconstructConfig,
    templates: TemplateSet | Path | str | None = None, batch_size: int = 8,
    progress: bool = False, client=None, device: str = "cpu",
) -> Iterator[tuple[Outcome | tuple[str, str], float]]:  # fmt: skip
    """Reconstruct ``todo`` in batches of ``batch_size`` (template starts when ``templates``):
    yields (Outcome, seconds per crystal), or ((id, reason), seconds) for one that raised.
    Each crystal draws from its own generator seeded by (config.seed, id), so its random
    starts and hops do not depend on its batch; float32 sums over a batch still differ in the
    last digits with its companions, and the descent can amplify that (batch 4 against 8-32
    on 64 MP-20 crystals: 1 status of 64 differs, same converged count, BENCHMARKS.md), so
    identical output needs the same ``batch_size``. With a Dask ``client`` (see
    `structrepdiff.cluster`) the batches run on its workers and come back in
    completion order; pass ``templates`` as a path there, so each worker loads it once.
    ``device`` (cpu, cuda, …) is where the descent runs, on every worker."""
    from structrepdiff.cluster import map_chunks

    if client is None:
        templates = _load_templates(templates)
    batches = [todo[k : k + batch_size] for k in range(0, len(todo), batch_size)]
    fn = functools.partial(reconstruct_chunk, ead=ead, config=config, templates=templates,
                           device=device)  # fmt: skip
    bar = tqdm(total=len(todo), disable=not progress, desc="reconstruct", unit="crystal")
    counts: dict[str, int] = {}
    for results in map_chunks(client, fn, batches):
        for o, per in results:
            key = ("converged" if o.converged else "not_converged") if isinstance(
                o, Outcome) else "failed"  # fmt: skip
            counts[key] = counts.get(key, 0) + 1
            yield o, per
        bar.update(len(results))
        bar.set_postfix(counts)
    bar.close()


def run_reconstruction(job: ReconstructJob, client=None) -> ReconstructSummary:
    """Decode every vector, reconstruct the decodable ones in batches, write CIFs and rows;
    with a Dask ``client`` the batches run on its workers (rows in completion order). The
    output folder is locked for the run (`run_lock`)."""
    with run_lock(job.out):
        return _run_reconstruction(job, client)


def _run_reconstruction(job: ReconstructJob, client=None) -> ReconstructSummary:
    from structrepdiff.device import check_device

    t0 = time.perf_counter()
    check_device(job.device)
    fs = load_features(job.representations)
    _load_templates(job.templates)  # a bad template file fails before anything is written
    done = _prepare_out(job)
    ids = dedupe_ids(fs.ids[: job.limit] if job.limit else fs.ids)
    if len(set(fs.ids[: len(ids)])) != len(ids):
        log.warning("%s repeats ids; the repeats are renamed <id>~<k>", job.representations)
    decoded = decode(fs.R[: len(ids)], fs.rep)
    pairs = targets_from(ids, decoded)
    if fs.source.get("symmetry") is not None:  # samples that carry their group and pattern
        from structrepdiff.symmetry.assign import choices_from_json

        pairs = with_symmetry(pairs, choices_from_json(fs.source["symmetry"])[: len(ids)])
    counts: dict[str, int] = {}
    writer = SummaryWriter(Path(job.out) / SUMMARY)
    todo: list[Target] = []
    try:
        for rid, t in pairs:
            if rid in done:
                continue
            if isinstance(t, str):
                writer.write(id=rid, status="rejected", reason=t)
                counts["rejected"] = counts.get("rejected", 0) + 1
            else:
                todo.append(t)
        for o, per in reconstruct_targets(todo, fs.rep.ead, job.config, job.templates,
                                          job.batch_size, job.progress, client,
                                          job.device):  # fmt: skip
            if isinstance(o, Outcome):
                status = _write_outcome(o, Path(job.out), per, writer)
            else:
                status = "failed"
                writer.write(id=o[0], status=status, reason=o[1], seconds=f"{per:.3f}")
            counts[status] = counts.get(status, 0) + 1
    finally:
        writer.close()
    return ReconstructSummary(counts, len(done), time.perf_counter() - t0, Path(job.out))
