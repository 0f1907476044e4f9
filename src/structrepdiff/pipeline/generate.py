"""Generate crystals: sample R from a model, decode, reconstruct (behind `structrepdiff generate`).

Writes into ``out``: ``samples.npz`` (the sampled vectors, drawn once and reused on a rerun),
one CIF per reconstructed crystal with ``summary.csv`` (status and reason per sample, e.g.
``rejected`` with why its vector could not be decoded), and ``generated.extxyz`` with every
reconstructed crystal (id, status and loss in each frame's info). With ``relax`` set, the
reconstructed crystals are then relaxed into ``out/relaxed/`` (see `structrepdiff.relax.run`).
A rerun resumes: sampled vectors are not redrawn and finished ids are not reconstructed or
relaxed again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from structrepdiff.bundled import BUNDLED
from structrepdiff.data.run_folder import (
    GENERATE_CONFIG,
    GENERATED_EXTXYZ,
    RELAXED_DIR,
    check_resume,
    run_lock,
    same_path,
    summary_extxyz,
)
from structrepdiff.features import atomic_write
from structrepdiff.pipeline.sample import SampleConfig, sample
from structrepdiff.reconstruct.config import JOB_BATCH_SIZE, ReconstructConfig
from structrepdiff.reconstruct.run import ReconstructJob, ReconstructSummary, run_reconstruction
from structrepdiff.reconstruct.starts import CHOICES, TEMPLATES_DEFAULT, starts_for
from structrepdiff.relax.config import RelaxConfig


@dataclass(frozen=True)
class GenerateConfig:
    """``sample.out`` is where the vectors go (the CLI uses ``out/samples.npz``);
    ``sample.device`` is where sampling and the reconstruction run; ``relax`` (None: off)
    relaxes the crystals with ``relax_workers`` processes.

    Starts and budget follow `reconstruct.starts`, as in the CLI and the API: ``templates``
    "auto" (the model's training split: bundled, else from ``data_dir``), "data", "none" or
    a template file; ``reconstruct`` None is the budget that follows the starts with
    ``overrides`` (field: value) replaced and the sampling seed; a `ReconstructConfig` is
    used as given."""

    out: Path
    sample: SampleConfig
    reconstruct: ReconstructConfig | None = None
    templates: str | Path | None = TEMPLATES_DEFAULT
    overrides: dict = field(default_factory=dict)
    data_dir: str | None = None
    batch_size: int = JOB_BATCH_SIZE
    relax: RelaxConfig | None = None
    relax_workers: int | None = None  # None: one process per core (relax.run.resolve_workers)
    force: bool = False
    progress: bool = True

    def settings(self) -> dict:
        d = asdict(self)
        d["sample"] = {k: v for k, v in d["sample"].items()
                       if k not in ("force", "progress", "out", "device")}  # fmt: skip
        d["reconstruct"] = None if self.reconstruct is None else self.reconstruct.to_dict()
        skip = {"force", "progress", "out"} | ({"relax", "relax_workers"} if self.relax is None
                                                 else set())  # fmt: skip
        kept = {k: v for k, v in d.items() if k not in skip}
        smp = kept["sample"]  # paths resolved, so a resume spelled another way is the same run
        if not (str(smp["model"]) in BUNDLED and not Path(smp["model"]).is_file()):
            smp["model"] = same_path(smp["model"])
        smp["composition_from"] = same_path(smp["composition_from"])
        if kept["templates"] is not None and str(kept["templates"]) not in CHOICES:
            kept["templates"] = same_path(kept["templates"])
        return json.loads(json.dumps(kept, default=str))  # Paths as strings, as in the file


def check_settings(cfg: GenerateConfig) -> None:
    """Refuse an --out that holds a run with other settings (unless --force)."""
    if not cfg.force:
        check_resume(Path(cfg.out), GENERATE_CONFIG, cfg.settings())


def save_settings(cfg: GenerateConfig) -> None:
    """Write generate_config.json: only once the model and the formulas have been accepted,
    so a failed start never blocks the corrected rerun."""
    path = Path(cfg.out) / GENERATE_CONFIG
    atomic_write(path, lambda p: p.write_text(json.dumps(cfg.settings(), indent=2)), force=True)


def write_extxyz(out: Path) -> int:
    """generated.extxyz from the CIFs listed in out/summary.csv; returns the frame count."""
    return summary_extxyz(out, GENERATED_EXTXYZ, lambda r: {
        "id": r["id"], "status": r["status"], "loss": float(r["loss"])})  # fmt: skip


def generate(cfg: GenerateConfig, client=None) -> tuple[ReconstructSummary, int]:
    """Sample (once), reconstruct (resumably; on a Dask ``client``'s workers when given),
    write the extxyz, relax if asked; see the module docstring. Returns the reconstruction
    summary and the number of crystals. The output folder is locked for the run."""
    with run_lock(cfg.out):
        return _generate(cfg, client)


def _generate(cfg: GenerateConfig, client=None) -> tuple[ReconstructSummary, int]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(cfg)
    samples = Path(cfg.sample.out)
    if cfg.force or not samples.exists():
        sample(replace(cfg.sample, force=True, progress=cfg.progress))  # validates first
    save_settings(cfg)
    templates, rcfg, _ = starts_for(samples, cfg.templates,
                                    {"seed": cfg.sample.seed, **cfg.overrides}, cfg.data_dir)
    rcfg = cfg.reconstruct or rcfg
    job = ReconstructJob(samples, out, rcfg, None, cfg.batch_size, cfg.force, cfg.progress,
                         templates, cfg.sample.device)  # fmt: skip
    summary = run_reconstruction(job, client)
    frames = write_extxyz(out)
    if cfg.relax is not None:
        from structrepdiff.relax.run import RelaxJob, run_relax

        run_relax(RelaxJob(out, out / RELAXED_DIR, cfg.relax, cfg.relax_workers, None, cfg.force,
                           cfg.progress), client)  # fmt: skip
    return summary, frames
