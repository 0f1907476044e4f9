"""Generate crystals: sample R from a model, decode, reconstruct (behind `structrepdiff generate`).

Writes into ``out``: ``samples.npz`` (the sampled vectors, drawn once and reused on a rerun),
one CIF per reconstructed crystal with ``summary.csv`` (status and reason per sample, e.g.
``rejected`` with why its vector could not be decoded), and ``generated.extxyz`` with every
reconstructed crystal (id, status and loss in each frame's info). A rerun resumes: sampled
vectors are not redrawn and finished ids are not reconstructed again.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from structrepdiff.diffusion.sample import SampleConfig, sample
from structrepdiff.features import atomic_write
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.run import ReconstructJob, ReconstructSummary, run_reconstruction


@dataclass(frozen=True)
class GenerateConfig:
    """``sample.out`` is where the vectors go (the CLI uses ``out/samples.npz``)."""

    out: Path
    sample: SampleConfig
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)
    templates: Path | None = None
    batch_size: int = 8
    force: bool = False
    progress: bool = True

    def settings(self) -> dict:
        d = asdict(self)
        d["sample"] = {k: v for k, v in d["sample"].items()
                       if k not in ("force", "progress", "out")}  # fmt: skip
        d["reconstruct"] = self.reconstruct.to_dict()
        kept = {k: v for k, v in d.items() if k not in ("force", "progress", "out")}
        return json.loads(json.dumps(kept, default=str))  # Paths as strings, as in the file


def check_settings(cfg: GenerateConfig) -> None:
    path = Path(cfg.out) / "generate_config.json"
    if path.exists() and not cfg.force and json.loads(path.read_text()) != cfg.settings():
        raise FileExistsError(f"{cfg.out} holds a run with other settings ({path}); "
                              "use another --out or --force to start over")  # fmt: skip
    atomic_write(path, lambda p: p.write_text(json.dumps(cfg.settings(), indent=2)), force=True)


def write_extxyz(out: Path) -> int:
    """generated.extxyz from the CIFs listed in out/summary.csv; returns the frame count."""
    from ase.io import read, write

    with open(out / "summary.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("cif")]
    frames = []
    for r in rows:
        atoms = read(out / r["cif"])
        atoms.info.update(id=r["id"], status=r["status"], loss=float(r["loss"]))
        frames.append(atoms)
    atomic_write(out / "generated.extxyz", lambda p: write(p, frames, format="extxyz"),
                 force=True, suffix=".extxyz")  # fmt: skip
    return len(frames)


def generate(cfg: GenerateConfig) -> tuple[ReconstructSummary, int]:
    """Sample (once), reconstruct (resumably), write the extxyz; see the module docstring."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(cfg)
    samples = Path(cfg.sample.out)
    if cfg.force or not samples.exists():
        sample(replace(cfg.sample, force=True, progress=cfg.progress))
    job = ReconstructJob(samples, out, cfg.reconstruct, None, cfg.batch_size, cfg.force,
                         cfg.progress, cfg.templates)  # fmt: skip
    summary = run_reconstruction(job)
    return summary, write_extxyz(out)
