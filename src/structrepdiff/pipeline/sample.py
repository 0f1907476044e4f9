"""Sample R vectors from a trained model (the library behind `structrepdiff sample`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from structrepdiff.diffusion.denoisers import guided
from structrepdiff.features import FeatureSet, save_features
from structrepdiff.pipeline.checkpoint import LoadedModel, training_source

SAMPLERS = ("ddpm", "ddim")


@dataclass(frozen=True)
class SampleConfig:
    """``steps`` applies to DDIM; DDPM always takes all T steps.

    Conditioning (at most one): ``formulas`` fixes composition and atom count to these
    formulas (cycled over the samples); ``composition_from`` draws them, seeded, from the rows
    of a feature file of the model's representation (e.g. its training features). A
    conditional model without either draws them from its composition model; ``guidance`` is
    its classifier-free guidance scale.

    ``space_group``: "auto" gives each sample a space group and Wyckoff pattern from the
    model's space-group prior when it carries one (drawn for sampled compositions, the most
    likely first for ``formulas``), conditions a group-conditioned model on it, and records
    it for reconstruction inside the group; "off" samples without groups (the unconstrained
    path); a number 1–230 fixes the group of every sample (1: P1).
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
    guidance: float = 1.0
    space_group: int | str = "auto"
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "formulas", tuple(self.formulas))
        object.__setattr__(self, "space_group", parse_space_group(self.space_group))
        if self.formulas and self.composition_from is not None:
            raise ValueError("give formulas or composition_from, not both")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.num < 1 or self.batch_size < 1 or self.steps < 1:
            raise ValueError("`num`, `batch_size` and `steps` must be positive")


def parse_space_group(value: int | str) -> int | str:
    """ "auto", "off" or a group number 1–230 (from an int or its string); one-line errors."""
    if isinstance(value, str) and value.strip().lower() in ("auto", "off"):
        return value.strip().lower()
    try:
        sg = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"space group must be auto, off or a number 1–230, got {value!r}"
                         ) from None  # fmt: skip
    if not 1 <= sg <= 230:
        raise ValueError(f"space group {sg} is not in 1–230")
    return sg


def uses_groups(model: LoadedModel, space_group: int | str) -> bool:
    """Whether sampling with ``space_group`` ("auto", "off", 1–230) assigns groups: "auto"
    does when the model carries a prior; a number needs one (ValueError otherwise)."""
    if space_group == "off" or (space_group == "auto" and model.prior is None):
        return False
    if model.prior is None or not model.conditional:
        raise ValueError(f"space group {space_group}: this model carries no space-group prior "
                         "(export it with `space_group_prior`); use `space_group` auto or off"
                         )  # fmt: skip
    return True


def sample_with_groups(model: LoadedModel, num: int, sampler: str = "ddim", steps: int = 100,
                       seed: int = 0, batch_size: int = 256, progress: bool = False,
                       known: tuple[np.ndarray, np.ndarray] | None = None,
                       guidance: float = 1.0, space_group: int | str = "auto"
                       ) -> tuple[np.ndarray, list]:  # fmt: skip
    """(R (num, D), choices): each sample's (group, pattern) from the model's prior, or the
    reason none fits, with R sampled given the group when the model is group-conditioned.
    Formulas in ``known`` get the ranking prior's ranked pairs (structure prediction),
    sampled compositions pairs drawn from the generation prior; a fixed ``space_group``
    keeps that group. See `assign_groups`."""
    from structrepdiff.symmetry.assign import assign_groups, numbers_of_rows

    given = known is not None
    known = _conditional_known(model, known, num, seed)
    comps = numbers_of_rows(model.rep, known[1])
    fixed = space_group if isinstance(space_group, int) else None
    prior = model.prior if given else model.generation_prior  # one prior per use
    choices = assign_groups(prior, comps, "rank" if given else "sample", seed, fixed)
    groups = None
    if model.group_conditioned:
        groups = np.array([0 if isinstance(c, str) else c[0] for c in choices])
    R = sample_vectors(model, num, sampler, steps, seed, batch_size, progress, known,
                       guidance, groups)  # fmt: skip
    return R, choices


def draw_vectors(
    model: LoadedModel,
    num: int,
    sampler: str = "ddim",
    steps: int = 100,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
    known: tuple[np.ndarray, np.ndarray] | None = None,
    guidance: float = 1.0,
    space_group: int | str = "auto",
    formulas=(),
) -> tuple[np.ndarray, list | None]:
    """(R (num, D), choices): `sample_with_groups` when ``space_group`` asks for groups
    (`uses_groups`; ``formulas`` that no proposal holds are refused in one line first),
    else `sample_vectors` and None. What `sample` and the Python API both call."""
    if not uses_groups(model, space_group):
        return sample_vectors(model, num, sampler, steps, seed, batch_size, progress, known,
                              guidance), None  # fmt: skip
    check_formulas_hold(model, formulas, space_group)
    return sample_with_groups(model, num, sampler, steps, seed, batch_size, progress, known,
                              guidance, space_group)  # fmt: skip


def check_formulas_hold(model: LoadedModel, formulas, space_group: int | str) -> None:
    """One line naming the first formula no proposal of the prior (or the fixed group) holds."""
    from structrepdiff.representation.condition import composition_row
    from structrepdiff.symmetry.assign import no_group_reason, numbers_of_rows

    fixed = space_group if isinstance(space_group, int) else None
    for f in dict.fromkeys(formulas):
        (numbers,) = numbers_of_rows(model.rep, composition_row(model.rep, f)[None])
        held = (model.prior.distribution(numbers) if fixed is None
                else model.prior.patterns(numbers, fixed))  # fmt: skip
        if not held:
            raise ValueError(no_group_reason(numbers, fixed))


def sample_vectors(model: LoadedModel, num: int, sampler: str = "ddim", steps: int = 100,
                   seed: int = 0, batch_size: int = 256, progress: bool = False,
                   known: tuple[np.ndarray, np.ndarray] | None = None,
                   guidance: float = 1.0, groups=None) -> np.ndarray:  # fmt: skip
    """(num, D) float64 vectors in R space (scaler inverted).

    x̂_0 is clamped at every step to the model's ``x0_bounds`` (the scaled training range
    widened by 10 %), when the checkpoint has them. Without it the cosine schedule's last steps
    (ᾱ_{T−1} ≈ 6e-10) multiply the ε error by up to 4e4 and samples diverge.

    ``known`` = (mask (D,) bool, values (num, D) in R units): features fixed during sampling
    (e.g. composition and atom count, see `composition_condition`). An unconditional model
    samples the rest by replacement in x̂_0; a conditional model (``model.conditional``) takes
    the known composition and N as its input and samples only the structure, with
    classifier-free ``guidance`` (1: plain conditional). A conditional model without ``known``
    draws compositions from the composition model in its checkpoint (seeded by ``seed``).

    ``groups`` (num,) int: the space group each sample is conditioned on (0 = left open), for a
    group-conditioned model (``model.group_conditioned``); None leaves every group open.

    Batch k draws from a generator seeded with (seed, k): same seed and batch size, same output.
    """
    groups = check_groups(model, groups, num)
    if model.conditional:
        known = _conditional_known(model, known, num, seed)
    elif guidance != 1.0:
        raise ValueError("guidance needs a conditional model (trained with `conditional`=True)")
    out = []
    for k, start in enumerate(tqdm(range(0, num, batch_size), disable=not progress,
                                   desc=f"sample ({sampler})")):  # fmt: skip
        n = min(batch_size, num - start)
        g = torch.Generator(device=model.device).manual_seed(seed * 1_000_003 + k)
        fixed = None if known is None else _scaled_known(model, known, start, n)
        if model.conditional:
            mask, z = fixed
            c = _with_groups(model, z[:, mask], groups, start, n).to(model.device)
            z[:, ~mask] = _draw(model, guided(model.net, c, guidance), n, sampler, steps, g,
                                None).cpu()  # fmt: skip
        else:
            z = _draw(model, model.net, n, sampler, steps, g, fixed)
        out.append(model.scaler.inverse(z.double().cpu().numpy()))
    return np.concatenate(out)


def check_groups(model: LoadedModel, groups, num: int) -> np.ndarray | None:
    """``groups`` as (num,) int (None when not given); one-line errors for a model without
    the group condition, a wrong length or a group outside 0–230."""
    if groups is None:
        return None
    if not model.group_conditioned:
        raise ValueError("this model was trained without the space-group condition; "
                         "train it with space_groups to give groups")  # fmt: skip
    g = np.asarray(groups, dtype=int).reshape(-1)
    if len(g) != num:
        raise ValueError(f"give one space group per sample: {len(g)} groups for {num}")
    if ((g < 0) | (g > 230)).any():
        raise ValueError(f"space group {int(g[(g < 0) | (g > 230)][0])} is not in 1–230")
    return g


def _with_groups(model: LoadedModel, c: torch.Tensor, groups: np.ndarray | None, start: int,
                 n: int) -> torch.Tensor:  # fmt: skip
    """Conditions c (n, ·) of the batch at ``start``, with the group columns appended for a
    group-conditioned model (unknown where ``groups`` is None)."""
    if not model.group_conditioned:
        return c
    from structrepdiff.representation.condition import group_features

    g = np.zeros(n, dtype=int) if groups is None else groups[start : start + n]
    return torch.cat([c, torch.as_tensor(group_features(g), dtype=c.dtype)], 1)


def refine_vectors(model: LoadedModel, R: np.ndarray, t0: int, steps: int = 100, seed: int = 0,
                   guidance: float = 1.0, batch_size: int = 256, groups=None
                   ) -> np.ndarray:  # fmt: skip
    """Projection step of a conditional model: the structure part of each R row (n, D) in R
    units, e.g. the re-encoded reconstructed crystal, is noised to step ``t0`` and denoised
    by DDIM given the row's own composition and N (which stay exactly) and, for a
    group-conditioned model, ``groups`` (n,) (0 / None = open). Returns (n, D). With a
    retrieved training crystal's R this is retrieval-anchored sampling (SDEdit)."""
    groups = check_groups(model, groups, len(R))
    if not model.conditional:
        raise ValueError("refining needs a conditional model (trained with `conditional`=True)")
    if not 0 <= t0 < model.diffusion.T:
        raise ValueError(f"start step must be in 0..{model.diffusion.T - 1}, got {t0}")
    mask, out = model.cond_mask, []
    for k, start in enumerate(range(0, len(R), batch_size)):
        z = torch.as_tensor(model.scaler.transform(np.asarray(R[start : start + batch_size])),
                            dtype=torch.float32)  # fmt: skip
        g = torch.Generator().manual_seed(seed * 1_000_003 + k)
        t = torch.full((len(z),), t0, dtype=torch.long)
        noise = torch.randn(z[:, ~mask].shape, generator=g)
        xt = model.diffusion.q_sample(z[:, ~mask].to(model.device), t.to(model.device),
                                      noise.to(model.device))  # fmt: skip
        c = _with_groups(model, z[:, mask], groups, start, len(z))
        net = guided(model.net, c.to(model.device), guidance)
        with torch.no_grad():
            z[:, ~mask] = model.diffusion.sample_ddim(
                net, xt.shape, steps=steps, device=model.device, clip=model.clip,
                start=(xt, t0)).cpu()  # fmt: skip
        out.append(model.scaler.inverse(z.double().numpy()))
    return np.concatenate(out)


def _draw(model: LoadedModel, net, n: int, sampler: str, steps: int, g: torch.Generator,
          fixed) -> torch.Tensor:  # fmt: skip
    """(n, model dim) scaled samples of the diffusion with denoiser ``net``."""
    shape = (n, model.denoiser_config.dim)
    if sampler == "ddpm":
        return model.diffusion.sample_ddpm(net, shape, generator=g, device=model.device,
                                           clip=model.clip, known=fixed)  # fmt: skip
    return model.diffusion.sample_ddim(net, shape, steps=steps, generator=g,
                                       device=model.device, clip=model.clip,
                                       known=fixed)  # fmt: skip


def _conditional_known(model: LoadedModel, known, num: int, seed: int
                       ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The conditions of a conditional model: ``known`` checked against the model's input
    features, or ``num`` compositions drawn from its composition model."""
    if known is None:
        if model.composition is None:
            raise ValueError("this conditional model has no composition model: give formulas "
                             "or `composition_from`, or export with `composition_model`"
                             )  # fmt: skip
        from structrepdiff.representation.condition import condition_rows_from_counts

        g = torch.Generator().manual_seed(seed)
        return condition_rows_from_counts(model.rep, model.composition.sample(num, g))
    if not np.array_equal(known[0], model.cond_mask):
        raise ValueError("a conditional model takes exactly composition and N as known "
                         "features")  # fmt: skip
    return known


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
        raise FileExistsError(f"{cfg.out} exists; pass `force`=True to overwrite")
    model = LoadedModel.load(cfg.model, cfg.device)
    known = conditions(cfg, model)
    R, choices = draw_vectors(model, cfg.num, cfg.sampler, cfg.steps, cfg.seed, cfg.batch_size,
                              cfg.progress, known, cfg.guidance, cfg.space_group,
                              cfg.formulas)  # fmt: skip
    from structrepdiff.symmetry.assign import choices_to_json

    symmetry = None if choices is None else choices_to_json(choices)
    ids = [f"sample_{k:06d}" for k in range(cfg.num)]
    source = {"model": str(cfg.model), "step": int(model.ckpt["step"]), "sampler": cfg.sampler,
              "steps": cfg.steps, "seed": cfg.seed, "batch_size": cfg.batch_size,
              "formulas": list(cfg.formulas), "guidance": cfg.guidance,
              "space_group": cfg.space_group, "symmetry": symmetry,
              "composition_from": None if cfg.composition_from is None
              else str(cfg.composition_from)}  # fmt: skip
    trained = training_source(model.ckpt)  # lets `reconstruct --templates auto` find the
    source.update(dataset=trained.get("dataset"), training_split=trained.get("split"))  # data
    save_features(FeatureSet(R, ids, model.rep, [], source), cfg.out, force=cfg.force)
    return Path(cfg.out)
