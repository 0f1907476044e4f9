"""Featurize a dataset split or CIF files into R (the library behind `structrepdiff featurize`)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from structrepdiff import __version__
from structrepdiff.data.io import LoadedStructures, Skipped, load_cifs, load_split
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.features import FeatureSet, save_features
from structrepdiff.representation.encode import Representation, iter_batches

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    preset: str = "paper"
    dtype: str = "float64"
    batch_size: int = 16
    limit: int | None = None
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if bool(self.cif) == bool(self.dataset):
            raise ValueError("give either --dataset with --split, or --cif with --elements-from")
        if self.dataset and not self.split:
            raise ValueError("--dataset needs --split")
        if self.cif and not self.elements_from:
            raise ValueError("--cif needs --elements-from DATASET (vocabulary and N_max)")
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
        return Counter(s.reason.split(":")[0] for s in self.skipped)


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


def encode_loaded(loaded: LoadedStructures, rep: Representation, dtype: torch.dtype,
                  batch_size: int, progress: bool) -> tuple[np.ndarray, list[str], list[Skipped]]:
    """R rows for the loaded structures; rows that do not encode to finite values are skipped."""
    rows, ids, skipped = [], [], list(loaded.skipped)
    bar = tqdm(total=len(loaded.structures), disable=not progress, desc="featurize", unit="crystal")
    for start in range(0, len(loaded.structures), batch_size):
        chunk = loaded.structures[start : start + batch_size]
        chunk_ids = loaded.ids[start : start + batch_size]
        R = next(iter_batches(chunk, rep, batch_size=len(chunk), dtype=dtype))
        for rid, row in zip(chunk_ids, R, strict=True):
            if np.isfinite(row).all():
                rows.append(row)
                ids.append(rid)
            else:
                bad = [k for k, sl in rep.layout.slices.items() if not np.isfinite(row[sl]).all()]
                why = "no neighbour within R_c" if bad == ["d_min"] else ", ".join(bad)
                skipped.append(Skipped(rid, f"non-finite representation: {why}"))
        bar.update(len(chunk))
    bar.close()
    R = np.stack(rows) if rows else np.zeros((0, rep.layout.dim))
    return R, ids, skipped


def featurize(cfg: FeaturizeConfig) -> FeaturizeSummary:
    """Load, encode and write one .npz (atomically; existing files need ``force``)."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    if out.exists() and not cfg.force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite")
    loaded, rep = _load(cfg)
    R, ids, skipped = encode_loaded(loaded, rep, DTYPES[cfg.dtype], cfg.batch_size, cfg.progress)
    source = {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
              for k, v in asdict(cfg).items() if k not in ("force", "progress")}
    source["structrepdiff_version"] = __version__
    save_features(FeatureSet(R, ids, rep, skipped, source), out, force=cfg.force)
    summary = FeaturizeSummary(len(ids), skipped, time.perf_counter() - t0, out)
    return summary
