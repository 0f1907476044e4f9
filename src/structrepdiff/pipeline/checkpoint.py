"""Self-contained model checkpoints: everything needed to sample and decode, nothing pickled.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, saved with
`torch.save` atomically and loaded with ``torch.load(weights_only=True)``:

    format, version, step, representation (descriptor preset, vocabulary, N_max, layout),
    scaler (mean, std), denoiser (config), diffusion (T, s, max_beta), train (config, split,
    held-out ids), model, ema, optimizer, rng, metrics; a conditional structure model adds
    conditional (mask (D,) bool of the input features, dropout) and may carry its composition
    model (composition: `CompositionModel.state()`) and a space-group prior
    (space_group_prior: `LearnedPrior.state()`); a group-conditioned one records group_dim
    and group_dropout in ``conditional``.

`export_checkpoint` writes a sampling-only copy (EMA weights, optionally in half precision,
plus ``exported``), small enough to bundle; it samples like the original but cannot resume
training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from structrepdiff.diffusion.ddpm import GaussianDiffusion
from structrepdiff.diffusion.denoisers import DenoiserConfig, build_denoiser
from structrepdiff.features import atomic_write
from structrepdiff.representation.encode import Representation
from structrepdiff.representation.scaler import Scaler

FORMAT, VERSION = "structrepdiff-ddpm", 1


class CheckpointError(ValueError):
    """A file that is not a readable structrepdiff checkpoint."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` (see module docstring) atomically to ``path``."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    try:
        atomic_write(Path(path), lambda p: torch.save(payload, p), force=True, suffix=".pt")
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as a RuntimeError
        raise OSError(f"could not write checkpoint {path} (disk full or not writable?): "
                      f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                      ) from None  # fmt: skip


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """The checkpoint dict of a file or a bundled model's name (``perov_5``, ``carbon_24``,
    ``mp_20``); a missing, foreign or truncated file raises a clear error."""
    from structrepdiff.bundled import resolve_model

    path = resolve_model(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # random bytes give IndexError, KeyError, ... as well
        why = f"{type(exc).__name__}: {_first_line(exc)}"
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or foreign "
                              f"file): {why}") from None  # fmt: skip
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a structrepdiff model checkpoint")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt.get('version')}, "
                              f"this structrepdiff reads version {VERSION}")  # fmt: skip
    return ckpt


_TRAINING_ONLY = ("model", "optimizer", "rng")
EXPORT_DTYPES = ("float32", "float16", "bfloat16")
EXPORT_DTYPE = "float16"  # the default: half the size, the same samples (BENCHMARKS "float16")


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, dtype: str = EXPORT_DTYPE,
                      force: bool = False, composition: str | os.PathLike | None = None,
                      space_group_prior: str | os.PathLike | None = None,
                      data_dir: str | None = None,
                      generation_prior: str | os.PathLike | None = None,
                      templates: bool = False) -> dict[str, Any]:  # fmt: skip
    """Write a sampling-only copy of checkpoint ``src`` to ``dst``: everything but the
    training weights, optimizer and RNG state, with the EMA network *parameters* cast to
    ``dtype`` (cast back to float32 on loading). Buffers such as the fitted Gaussian of
    `GaussianSkip` stay float32: they hold values half precision cannot represent.
    ``composition`` (a file from `train-composition`) bundles that composition model, refused
    unless the checkpoint is conditional and shares its vocabulary and N_max.
    ``space_group_prior`` bundles a space-group prior (`LearnedPrior`): a file saved from
    ``prior.state()``, or "auto" to fit it on the model's training split (found in
    ``data_dir``) at `PREDICTION_TOL`; it ranks groups for given formulas.
    ``generation_prior`` (same forms, "auto" at `GENERATION_TOL`) draws the groups of sampled
    compositions instead; without it ``space_group_prior`` does both. ``templates`` packs the
    crystals of the training split (on Wyckoff parameters too when a prior is bundled;
    `template_pack`), so that decoding needs no data directory. Returns the copy's
    ``exported`` record."""
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
    ckpt = load_checkpoint(src)
    if Path(dst).exists() and not force:
        raise FileExistsError(f"{dst} exists; pass `force`=True to overwrite")
    cast = getattr(torch, dtype)
    params = {n for n, _ in build_denoiser(DenoiserConfig.from_dict(ckpt["denoiser"]))
              .named_parameters()}  # fmt: skip
    ema = {k: v.to(cast) if k in params else v for k, v in ckpt["ema"].items()}
    record = {"source": Path(src).name, "dtype": dtype, "step": int(ckpt["step"]),
              "n_parameters": int(sum(v.numel() for v in ema.values()))}  # fmt: skip
    keep = {k: v for k, v in ckpt.items() if k not in (*_TRAINING_ONLY, "format", "version")}
    if composition is not None:
        keep["composition"] = _composition_state(ckpt, composition)
        record["composition"] = Path(composition).name
    for key, given, use in (("space_group_prior", space_group_prior, "prediction"),
                            ("space_group_prior_generation", generation_prior, "generation")):
        if given is not None:
            keep[key] = _prior_state(ckpt, given, data_dir, use)
            record[key] = str(given) if given == "auto" else Path(given).name
    if "space_group_prior_generation" in keep and "space_group_prior" not in keep:
        raise ValueError("a generation prior goes with a space-group prior "
                         "(`space_group_prior`), which ranks groups for given formulas")
    if templates:
        keep["templates"] = _template_pack(ckpt, "space_group_prior" in keep, data_dir)
        record["templates"] = f"{keep['templates']['dataset']}/{keep['templates']['split']}"
    save_checkpoint({**keep, "ema": ema, "exported": record}, dst)
    return record


def _composition_state(ckpt: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    from structrepdiff.composition.train import load_composition_model

    if "conditional" not in ckpt:
        raise ValueError("a composition model goes with a conditional structure model "
                         "(trained with `conditional`=True); this one is unconditional"
                         )  # fmt: skip
    model, _ = load_composition_model(Path(path))
    rep = Representation.from_dict(ckpt["representation"])
    model.cfg.check_matches(rep.atomic_numbers, rep.n_max, str(path))
    return model.state()


def _template_pack(ckpt: dict[str, Any], symmetric: bool, data_dir: str | None
                   ) -> dict[str, Any]:  # fmt: skip
    from structrepdiff.reconstruct.template_pack import pack_templates

    src = training_source(ckpt)
    if not src.get("dataset") or not src.get("split"):
        raise ValueError("templates need a checkpoint that records its training dataset and "
                         "split")  # fmt: skip
    return pack_templates(src["dataset"], src["split"], data_dir, symmetric=symmetric)


def _prior_state(ckpt: dict[str, Any], prior, data_dir: str | None, use: str
                 ) -> dict[str, Any]:  # fmt: skip
    from structrepdiff.symmetry.learned import (
        GENERATION_TOL,
        PREDICTION_TOL,
        fit_prior,
        load_prior,
    )

    if "conditional" not in ckpt:
        raise ValueError("a space-group prior goes with a conditional structure model "
                         "(trained with `conditional`=True); this one is unconditional"
                         )  # fmt: skip
    if prior != "auto":
        return load_prior(prior).state()
    src = training_source(ckpt)
    if not src.get("dataset") or not src.get("split"):
        raise ValueError("prior 'auto' needs a checkpoint that records its training dataset "
                         "and split; fit the prior yourself and give its file")  # fmt: skip
    tol = GENERATION_TOL if use == "generation" else PREDICTION_TOL
    return fit_prior(src["dataset"], src["split"], data_dir, tol=tol).state()


def scaler_state(scaler: Scaler) -> dict[str, Any]:
    return {"kind": scaler.kind, "mean": torch.from_numpy(scaler.mean),
            "std": torch.from_numpy(scaler.std)}  # fmt: skip


def scaler_from_state(d: dict[str, Any]) -> Scaler:
    return Scaler.from_dict({"kind": d["kind"], "mean": np.asarray(d["mean"].numpy()),
                             "std": np.asarray(d["std"].numpy())})  # fmt: skip


def training_source(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What the model was trained on, as its checkpoint records it (``dataset``, ``split``,
    preset, ...); empty when the checkpoint does not say."""
    return (ckpt.get("train") or {}).get("source") or {}


class LoadedModel:
    """A checkpoint made usable: EMA denoiser (eval mode), diffusion, scaler, representation."""

    def __init__(self, ckpt: dict[str, Any], device: str = "cpu", use_ema: bool = True):
        self.ckpt = ckpt
        self.rep = Representation.from_dict(ckpt["representation"])
        self.scaler = scaler_from_state(ckpt["scaler"])
        self.denoiser_config = DenoiserConfig.from_dict(ckpt["denoiser"])
        self.net = build_denoiser(self.denoiser_config).to(device)
        key = "ema" if use_ema else "model"
        if key not in ckpt:
            raise CheckpointError(f"this checkpoint has no {key!r} weights (an exported, "
                                  "sampling-only checkpoint holds EMA weights only)")  # fmt: skip
        self.net.load_state_dict(ckpt[key])  # casts exported half-precision weights back
        self.net.eval()
        self.diffusion = GaussianDiffusion(**ckpt["diffusion"]).to(device)
        self.device = device
        b = ckpt.get("x0_bounds")  # absent in checkpoints written before it existed
        self.clip = None if b is None else (b["lo"].to(device), b["hi"].to(device))
        cond = ckpt.get("conditional")
        # (D,) bool: the R features a conditional model takes as input (composition and N)
        self.cond_mask = None if cond is None else cond["mask"].cpu().numpy().astype(bool)
        # a group-conditioned model also takes `group_features` (space group, crystal system)
        self.group_dim = 0 if cond is None else int(cond.get("group_dim", 0))
        self.composition = None
        if "composition" in ckpt:
            from structrepdiff.composition.model import CompositionModel

            self.composition = CompositionModel.from_state(ckpt["composition"])
            self.composition.cfg.check_matches(self.rep.atomic_numbers, self.rep.n_max,
                                               "in this checkpoint")  # fmt: skip
        pack, trained = ckpt.get("templates"), training_source(ckpt).get("dataset")
        if pack is not None and trained and pack.get("dataset") != trained:
            raise CheckpointError(f"it bundles {pack.get('dataset')} templates with a model "
                                  f"trained on {trained}; the two do not go together")  # fmt: skip
        self.prior = None  # p(space group, Wyckoff pattern | composition), when bundled
        if "space_group_prior" in ckpt:
            from structrepdiff.symmetry.learned import LearnedPrior

            if self.cond_mask is None:
                raise CheckpointError("it bundles a space-group prior with an unconditional "
                                      "structure model; the two do not go together")  # fmt: skip
            self.prior = LearnedPrior.from_state(ckpt["space_group_prior"])
        # the prior that draws groups for sampled compositions (one per use: BENCHMARKS
        # "Issue 26, part 3"); the ranking prior when the checkpoint bundles no other
        self.generation_prior = self.prior
        if "space_group_prior_generation" in ckpt:
            from structrepdiff.symmetry.learned import LearnedPrior

            if self.prior is None:
                raise CheckpointError("it bundles a generation prior without a space-group "
                                      "prior; export both together")  # fmt: skip
            self.generation_prior = LearnedPrior.from_state(ckpt["space_group_prior_generation"])

    @property
    def conditional(self) -> bool:
        """True when the denoiser models the structure given composition and N."""
        return self.cond_mask is not None

    @property
    def group_conditioned(self) -> bool:
        """True when the denoiser also takes the space group (trained with space_groups)."""
        return self.group_dim > 0

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> LoadedModel:
        """The model at ``path``; a bad device, a damaged or incomplete checkpoint raise one
        line naming the file and the cause."""
        from structrepdiff.device import check_device

        ckpt = load_checkpoint(path, map_location=check_device(device))
        try:
            return cls(ckpt, device)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except KeyError as exc:
            raise CheckpointError(f"{path} is incomplete: no {exc} entry") from None
        except (RuntimeError, TypeError, ValueError) as exc:  # load_state_dict: wrong shapes
            first = str(exc).strip().splitlines()
            raise CheckpointError(f"{path} does not fit its own settings ({type(exc).__name__}:"
                                  f" {' '.join(first[:3])[:300]})") from None  # fmt: skip
