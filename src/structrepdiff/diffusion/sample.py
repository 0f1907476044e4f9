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
    """``steps`` applies to DDIM; DDPM always takes all T steps.

    Conditioning (at most one): ``formulas`` fixes composition and atom count to these
    formulas (cycled over the samples); ``composition_from`` draws them, seeded, from the rows
    of a feature file of the model's representation (e.g. its training features).
    """

    model: Path
    out: Path
    num: int
    sampler: str = "ddim"
    steps: int = 100
    seed: int = 0
    batch_size: int = 256
    device: str = "cpu"
    formulas: tuple[str, ...] = ()
    composition_from: Path | None = None
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "formulas", tuple(self.formulas))
        if self.formulas and self.composition_from is not None:
            raise ValueError("give formulas or composition_from, not both")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.num < 1 or self.batch_size < 1 or self.steps < 1:
            raise ValueError("--num, --batch-size and --steps must be positive")


def sample_vectors(model: LoadedModel, num: int, sampler: str = "ddim", steps: int = 100,
                   seed: int = 0, batch_size: int = 256, progress: bool = False,
                   known: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """(num, D) float64 vectors in R space (scaler inverted).

    x̂_0 is clamped at every step to the model's ``x0_bounds`` (the scaled training range
    widened by 10 %), when the checkpoint has them. Without it the cosine schedule's last steps
    (ᾱ_{T−1} ≈ 6e-10) multiply the ε error by up to 4e4 and samples diverge.

    ``known`` = (mask (D,) bool, values (num, D) in R units): features fixed during sampling
    (e.g. composition and atom count, see `composition_condition`); the rest is sampled
    conditionally on them by replacement in x̂_0.

    Batch k draws from a generator seeded with (seed, k): same seed and batch size, same output.
    """
    dim, out = model.denoiser_config.dim, []
    for k, start in enumerate(tqdm(range(0, num, batch_size), disable=not progress,
                                   desc=f"sample ({sampler})")):  # fmt: skip
        n = min(batch_size, num - start)
        g = torch.Generator(device=model.device).manual_seed(seed * 1_000_003 + k)
        fixed = None if known is None else _scaled_known(model, known, start, n)
        if sampler == "ddpm":
            z = model.diffusion.sample_ddpm(model.net, (n, dim), generator=g, device=model.device,
                                            clip=model.clip, known=fixed)  # fmt: skip
        else:
            z = model.diffusion.sample_ddim(model.net, (n, dim), steps=steps, generator=g,
                                            device=model.device, clip=model.clip,
                                            known=fixed)  # fmt: skip
        out.append(model.scaler.inverse(z.double().cpu().numpy()))
    return np.concatenate(out)


def _scaled_known(model: LoadedModel, known: tuple[np.ndarray, np.ndarray], start: int,
                  n: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Rows start..start+n of the known values, in the model's scaled space."""
    mask, values = known
    z = np.asarray(model.scaler.transform(np.asarray(values[start : start + n], float)))
    z = np.where(mask[None], z, 0.0)  # unknown entries are ignored; keep them finite
    return torch.as_tensor(mask, dtype=torch.bool), torch.as_tensor(z, dtype=torch.float32)


def conditions(cfg: SampleConfig, model: LoadedModel) -> tuple[np.ndarray, np.ndarray] | None:
    """The known features asked for by ``cfg`` (None when unconditional)."""
    from structrepdiff.features import load_features
    from structrepdiff.representation.condition import (
        composition_condition,
        conditions_from_rows,
    )

    if cfg.formulas:
        return composition_condition(model.rep, cfg.formulas, cfg.num)
    if cfg.composition_from is None:
        return None
    fs = load_features(cfg.composition_from)
    if fs.rep != model.rep:
        raise ValueError(f"{cfg.composition_from} was featurised with another representation "
                         "than the model's")  # fmt: skip
    return conditions_from_rows(model.rep, fs.R[np.isfinite(fs.R).all(1)], cfg.num, cfg.seed)


def sample(cfg: SampleConfig) -> Path:
    """Sample ``cfg.num`` vectors and write them as a feature file (ids sample_000000, ...)."""
    if Path(cfg.out).exists() and not cfg.force:
        raise FileExistsError(f"{cfg.out} exists; pass --force to overwrite")
    model = LoadedModel.load(cfg.model, cfg.device)
    known = conditions(cfg, model)
    R = sample_vectors(model, cfg.num, cfg.sampler, cfg.steps, cfg.seed, cfg.batch_size,
                       cfg.progress, known)  # fmt: skip
    ids = [f"sample_{k:06d}" for k in range(cfg.num)]
    source = {"model": str(cfg.model), "step": int(model.ckpt["step"]), "sampler": cfg.sampler,
              "steps": cfg.steps, "seed": cfg.seed, "batch_size": cfg.batch_size,
              "formulas": list(cfg.formulas),
              "composition_from": None if cfg.composition_from is None
              else str(cfg.composition_from)}  # fmt: skip
    save_features(FeatureSet(R, ids, model.rep, [], source), cfg.out, force=cfg.force)
    return Path(cfg.out)
