"""Sample R vectors from a trained model (the library behind `structrepdiff sample`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from structrepdiff.diffusion.checkpoint import LoadedModel
from structrepdiff.features import FeatureSet, save_features

SAMPLERS = ("ddpm", "ddim")


@dataclass(frozen=True)
class SampleConfig:
    """``steps`` applies to DDIM; DDPM always takes all T steps."""

    model: Path
    out: Path
    num: int
    sampler: str = "ddim"
    steps: int = 100
    seed: int = 0
    batch_size: int = 256
    device: str = "cpu"
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.num < 1 or self.batch_size < 1 or self.steps < 1:
            raise ValueError("--num, --batch-size and --steps must be positive")


def sample_vectors(model: LoadedModel, num: int, sampler: str = "ddim", steps: int = 100,
                   seed: int = 0, batch_size: int = 256, progress: bool = False
                   ) -> np.ndarray:  # fmt: skip
    """(num, D) float64 vectors in R space (scaler inverted).

    x̂_0 is clamped at every step to the model's ``x0_bounds`` (the scaled training range
    widened by 10 %), when the checkpoint has them. Without it the cosine schedule's last steps
    (ᾱ_{T−1} ≈ 6e-10) multiply the ε error by up to 4e4 and samples diverge.

    Batch k draws from a generator seeded with (seed, k): same seed and batch size, same output.
    """
    dim, out = model.denoiser_config.dim, []
    for k, start in enumerate(tqdm(range(0, num, batch_size), disable=not progress,
                                   desc=f"sample ({sampler})")):  # fmt: skip
        n = min(batch_size, num - start)
        g = torch.Generator(device=model.device).manual_seed(seed * 1_000_003 + k)
        if sampler == "ddpm":
            z = model.diffusion.sample_ddpm(model.net, (n, dim), generator=g, device=model.device,
                                            clip=model.clip)  # fmt: skip
        else:
            z = model.diffusion.sample_ddim(model.net, (n, dim), steps=steps, generator=g,
                                            device=model.device, clip=model.clip)  # fmt: skip
        out.append(model.scaler.inverse(z.double().cpu().numpy()))
    return np.concatenate(out)


def sample(cfg: SampleConfig) -> Path:
    """Sample ``cfg.num`` vectors and write them as a feature file (ids sample_000000, ...)."""
    if Path(cfg.out).exists() and not cfg.force:
        raise FileExistsError(f"{cfg.out} exists; pass --force to overwrite")
    model = LoadedModel.load(cfg.model, cfg.device)
    R = sample_vectors(model, cfg.num, cfg.sampler, cfg.steps, cfg.seed, cfg.batch_size,
                       cfg.progress)  # fmt: skip
    ids = [f"sample_{k:06d}" for k in range(cfg.num)]
    source = {"model": str(cfg.model), "step": int(model.ckpt["step"]), "sampler": cfg.sampler,
              "steps": cfg.steps, "seed": cfg.seed, "batch_size": cfg.batch_size}  # fmt: skip
    save_features(FeatureSet(R, ids, model.rep, [], source), cfg.out, force=cfg.force)
    return Path(cfg.out)
