"""Featurize a dataset split or CIF files into R (the library behind `structrepdiff featurize`)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from structrepdiff import __version__
from structrepdiff.data.io import (
    LoadedStructures,
    Skipped,
    load_cifs,
    load_split,
    reason_counts,
)
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.features import FeatureSet, atomic_write, load_features, save_features
from structrepdiff.geometry.neighbors import pair_budget_reason
from structrepdiff.representation.encode import Representation, encode_batch
from structrepdiff.representation.scaler import Scaler

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
CHECKPOINT_SECONDS = 30.0


@dataclass(frozen=True)
class FeaturizeConfig:
    """What to featurize and how. Exactly one of ``dataset``+``split`` or ``cif`` is given;
    with ``cif``, ``elements_from`` names the dataset whose vocabulary and N_max apply."""

    out: Path
    dataset: str | None = None
    split: str | None = None
    cif: tuple[str, ...] = ()
    elements_from: str | None = None
    data_dir: str | None = None
    preset: str = "small"
    dtype: str = "float64"
    batch_size: int = 16
    limit: int | None = None
    force: bool = False
    progress: bool = True
    scaler_out: Path | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if bool(self.cif) == bool(self.dataset):
            raise ValueError("give either `dataset` with `split`, or `cif` with `elements_from`")
        if self.dataset and not self.split:
            raise ValueError("`dataset` needs `split`")
        if self.cif and not self.elements_from:
            raise ValueError(
                "`cif` needs `elements_from`, a dataset name (its vocabulary and N_max)"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}")
        if self.batch_size < 1 or (self.limit is not None and self.limit < 1):
            raise ValueError("batch_size and limit must be positive")
        get_preset(self.preset)


@dataclass
class FeaturizeSummary:
    n_ok: int
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    out: Path | None = None

    def reason_counts(self) -> Counter:
        return reason_counts(self.skipped)


def _load(cfg: FeaturizeConfig) -> tuple[LoadedStructures, Representation]:
    info = get_dataset(cfg.dataset or cfg.elements_from)
    rep = Representation(get_preset(cfg.preset), info.atomic_numbers, info.n_max)
    if cfg.dataset:
        loaded = load_split(cfg.dataset, cfg.split, cfg.data_dir, cfg.limit, cfg.progress)
    else:
        loaded = load_cifs(cfg.cif, info.atomic_numbers, info.n_max, cfg.progress)
        if cfg.limit is not None:
            loaded.ids, loaded.structures = loaded.ids[: cfg.limit], loaded.structures[: cfg.limit]
    return loaded, rep


Rows = tuple[list[np.ndarray], list[str], list[Skipped]]


def _within_pair_budget(loaded: LoadedStructures, todo: list[int], rep: Representation,
                        skipped: list[Skipped]) -> list[int]:  # fmt: skip
    """The indices in ``todo`` whose neighbour work is bounded; the others are skipped with a
    reason before anything is allocated (one such crystal must not sink its batch)."""
    keep = []
    for k in todo:
        s = loaded.structures[k]
        reason = pair_budget_reason(len(s), float(s.volume), rep.ead.cutoff)
        if reason is None:
            keep.append(k)
        else:
            skipped.append(Skipped(loaded.ids[k], reason))
    return keep


def encode_loaded(
    loaded: LoadedStructures,
    rep: Representation,
    dtype: torch.dtype,
    batch_size: int,
    progress: bool,
    resume: Rows | None = None,
    checkpoint: Callable[[Rows], None] | None = None,
    every_s: float | None = None,
    device: str = "cpu",
) -> Rows:
    """Encode the loaded structures in batches: (R rows, their ids, rows skipped here).

    Rows that do not encode to finite values are skipped with a reason. ``resume`` holds rows
    already done (their ids are not encoded again); ``checkpoint`` is called with the state
    every ``every_s`` seconds (default ``CHECKPOINT_SECONDS``). The EAD runs on ``device``.
    """
    every_s = CHECKPOINT_SECONDS if every_s is None else every_s
    rows, ids, skipped = resume if resume is not None else ([], [], [])
    done = set(ids) | {s.id for s in skipped}
    todo = [k for k, rid in enumerate(loaded.ids) if rid not in done]
    todo = _within_pair_budget(loaded, todo, rep, skipped)
    bar = tqdm(
        total=len(loaded.ids),
        initial=len(loaded.ids) - len(todo),
        disable=not progress,
        desc="featurize",
        unit="crystal",
    )
    last = time.monotonic()
    for start in range(0, len(todo), batch_size):
        idx = todo[start : start + batch_size]
        R = encode_batch([loaded.structures[k] for k in idx], rep, dtype, device)
        for k, row in zip(idx, R, strict=True):
            if np.isfinite(row).all():
                rows.append(row)
                ids.append(loaded.ids[k])
            else:
                bad = [b for b, sl in rep.layout.slices.items() if not np.isfinite(row[sl]).all()]
                why = "no neighbour within R_c" if bad == ["d_min"] else ", ".join(bad)
                skipped.append(Skipped(loaded.ids[k], f"non-finite representation: {why}"))
        bar.update(len(idx))
        if checkpoint is not None and time.monotonic() - last > every_s:
            checkpoint((rows, ids, skipped))
            last = time.monotonic()
    bar.close()
    return rows, ids, skipped


def stack_rows(rows: list[np.ndarray], rep: Representation) -> np.ndarray:
    """(n, D) from encoded rows; (0, D) when there are none."""
    return np.stack(rows) if rows else np.zeros((0, rep.layout.dim))


def _resume(partial: Path, rep: Representation, source: dict) -> Rows | None:
    """State saved by an interrupted run with the same settings, else None."""
    if not partial.exists():
        return None
    try:
        fs = load_features(partial)
    except ValueError as exc:
        log.warning("ignoring unreadable partial file %s: %s", partial, exc)
        return None
    if fs.rep != rep or fs.source != source:
        log.warning("ignoring %s: it was written with other settings", partial)
        return None
    log.info("resuming from %s: %d rows done", partial, len(fs.ids) + len(fs.skipped))
    return list(fs.R), fs.ids, fs.skipped


def featurize(cfg: FeaturizeConfig) -> FeaturizeSummary:
    """Load, encode and write one .npz (atomically; existing files need ``force``).

    Progress is saved to ``<out>.partial`` every 30 s; a rerun with the same settings resumes
    from it (``force`` starts afresh). The partial file is removed once ``out`` is written.
    """
    from structrepdiff.device import check_device

    t0 = time.perf_counter()
    check_device(cfg.device)
    out = Path(cfg.out)
    for path in (out, cfg.scaler_out):
        if path is not None and Path(path).exists() and not cfg.force:
            raise FileExistsError(f"{path} exists; pass `force`=True to overwrite")
    loaded, rep = _load(cfg)
    source = {
        k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
        for k, v in asdict(cfg).items()
        if k not in ("force", "progress", "device")  # a device changes only rounding
    }
    source["structrepdiff_version"] = __version__
    partial = out.with_name(out.name + ".partial")

    def checkpoint(state: Rows) -> None:
        save_features(
            FeatureSet(stack_rows(state[0], rep), state[1], rep, state[2], source),
            partial,
            force=True,
        )

    resume = None if cfg.force else _resume(partial, rep, source)
    rows, ids, enc_skipped = encode_loaded(
        loaded,
        rep,
        DTYPES[cfg.dtype],
        cfg.batch_size,
        cfg.progress,
        resume,
        checkpoint,
        device=cfg.device,
    )
    R, skipped = stack_rows(rows, rep), loaded.skipped + enc_skipped
    if cfg.scaler_out is not None and not ids:  # checked before anything is written
        top = Counter(s.reason for s in skipped).most_common(2)
        why = "; ".join(f"{n}× {r}" for r, n in top) or "no input"
        raise ValueError(f"no crystal could be featurized ({why}): a scaler needs rows")
    save_features(FeatureSet(R, ids, rep, skipped, source), out, force=cfg.force)
    partial.unlink(missing_ok=True)
    if cfg.scaler_out is not None:
        scaler = Scaler.fit(R)
        atomic_write(Path(cfg.scaler_out), scaler.save, force=cfg.force, suffix=".npz")
    return FeaturizeSummary(len(ids), skipped, time.perf_counter() - t0, out)
