"""Train a DDPM on R (the library behind `structrepdiff train`).

The training split is featurised once (cached as ``<out>/features_<split>.npz``), a seeded
fraction of it is held out for the validation loss, the scaler is fitted on the rest, and
Adam trains the denoiser with EMA weights. ``<out>/checkpoint.pt`` is written atomically every
``checkpoint_every`` steps and at the end, ``<out>/metrics.jsonl`` gets one line per
evaluation, and ``resume`` continues exactly where the checkpoint stopped (same batches, same
noise), so an interrupted run and an uninterrupted one end with the same weights.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from structrepdiff.descriptor.config import get_preset
from structrepdiff.diffusion.ddpm import GaussianDiffusion
from structrepdiff.diffusion.denoisers import (
    DenoiserConfig,
    GaussianSkip,
    build_denoiser,
    guided,
)
from structrepdiff.features import FeatureSet, load_features
from structrepdiff.pipeline.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    scaler_state,
)
from structrepdiff.representation.condition import GROUP_DIM, condition_mask, group_features
from structrepdiff.representation.scaler import SCALER_KINDS, Scaler


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``features`` (an .npz from `featurize`) replaces dataset featurising.

    ``space_groups`` (conditional models only) adds each training crystal's space group and
    crystal system to the condition: a JSON file of {id: group} or of `describe_split` rows,
    or "auto" (the training split described by pyxtal at 0.01 Å, cached in ``out``). Rows
    without a group, and a ``group_dropout`` fraction of the others per batch, get the
    "unknown" group, so the model also samples with the group left open."""

    out: Path
    dataset: str | None = None
    split: str = "val"
    features: Path | None = None
    data_dir: str | None = None
    preset: str = "small"
    scaler: str = "standard"
    composition_weight: float = 1.0
    conditional: bool = False
    cond_dropout: float = 0.1
    space_groups: str | None = None
    group_dropout: float = 0.3
    min_snr_gamma: float = 0.0
    denoiser: DenoiserConfig = field(default_factory=lambda: DenoiserConfig(dim=1))
    T: int = 2000
    lr: float = 1e-4
    batch_size: int = 64
    steps: int = 20_000
    ema_decay: float = 0.999
    holdout: float = 0.05
    eval_every: int = 500
    checkpoint_every: int = 1000
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.features is None):
            raise ValueError("give exactly one of `dataset` or `features`")
        if self.scaler not in SCALER_KINDS:
            raise ValueError(f"scaler must be one of {SCALER_KINDS}, got {self.scaler!r}")
        if not self.composition_weight > 0:
            raise ValueError("composition_weight must be positive")
        if self.conditional and self.composition_weight != 1.0:
            raise ValueError("a conditional model does not diffuse the composition; "
                             "composition_weight must stay 1")  # fmt: skip
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError("cond_dropout must be in [0, 1)")
        if self.space_groups is not None and not self.conditional:
            raise ValueError("a space-group condition needs a conditional model "
                             "(`conditional`=True)")  # fmt: skip
        if not 0.0 <= self.group_dropout < 1.0:
            raise ValueError("group_dropout must be in [0, 1)")
        if self.min_snr_gamma < 0:
            raise ValueError("min_snr_gamma must be >= 0 (0 switches it off)")
        if not 0.0 < self.holdout < 0.5:
            raise ValueError("holdout must be in (0, 0.5)")
        for name in ("batch_size", "steps", "eval_every", "checkpoint_every", "T"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["denoiser"] = self.denoiser.to_dict()
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()
                if k not in ("resume", "force", "progress")}  # fmt: skip


@dataclass
class TrainSummary:
    step: int
    train_loss: float
    val_loss: float
    seconds: float
    checkpoint: Path


def training_features_path(out: str | Path, features: str | Path | None, split: str) -> Path:
    """Where a run's training rows are: ``features``, or out/features_<split>.npz."""
    return Path(features) if features is not None else Path(out) / f"features_{split}.npz"


def load_training_features(cfg: TrainConfig) -> FeatureSet:
    """The training rows: ``cfg.features``, or the dataset split featurised once into out/."""
    if cfg.features is not None:
        return load_features(cfg.features)
    from structrepdiff.pipeline.featurize import FeaturizeConfig, featurize

    path = training_features_path(cfg.out, None, cfg.split)
    if not path.exists():
        featurize(FeaturizeConfig(out=path, dataset=cfg.dataset, split=cfg.split,
                                  data_dir=cfg.data_dir, preset=cfg.preset,
                                  progress=cfg.progress))  # fmt: skip
    fs = load_features(path)
    if fs.rep.ead != get_preset(cfg.preset):
        raise ValueError(f"{path} was featurised with another preset; delete it first")
    return fs


def features_digest(fs: FeatureSet) -> str:
    """sha256 of the training rows' content (ids and R as float64): a resume on other data,
    even under the same file name, is refused."""
    import hashlib

    h = hashlib.sha256("\n".join(fs.ids).encode())
    h.update(np.ascontiguousarray(fs.R, dtype=np.float64).tobytes())
    return h.hexdigest()


def x0_bounds(X: torch.Tensor, margin: float = 0.1) -> dict[str, torch.Tensor]:
    """Per-feature range of the scaled training rows X (n, D), widened by ``margin`` of it on
    each side: samplers clamp x̂_0 to it (constant features stay exactly constant)."""
    lo, hi = X.min(0).values, X.max(0).values
    pad = margin * (hi - lo)
    return {"lo": (lo - pad).cpu(), "hi": (hi + pad).cpu()}


def split_rows(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) row indices: a seeded random ``holdout`` fraction, at least one row."""
    if n < 2:
        raise ValueError(f"need at least 2 training vectors, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, round(holdout * n))
    return np.sort(perm[k:]), np.sort(perm[:k])


def feature_weights(layout_slices: dict[str, slice], dim: int, composition_weight: float
                    ) -> torch.Tensor | None:  # fmt: skip
    """(D,) loss weights, mean 1, with the composition block ``composition_weight`` times the
    rest; None when it is 1 (plain MSE)."""
    if composition_weight == 1.0:
        return None
    w = torch.ones(dim)
    w[layout_slices["composition"]] = composition_weight
    return w / w.mean()


@torch.no_grad()
def validation_loss(diff: GaussianDiffusion, net, X: torch.Tensor, seed: int,
                    repeats: int = 4, batch: int = 512, weight: torch.Tensor | None = None,
                    C: torch.Tensor | None = None,
                    time_weight: torch.Tensor | None = None) -> float:  # fmt: skip
    """Mean ε-MSE (weighted as in training) over the rows of X (conditioned on the rows of C
    when given), at fixed random t and noise (comparable between calls)."""
    g = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for _ in range(repeats):
        for k in range(0, len(X), batch):
            x = X[k : k + batch]
            model = net if C is None else guided(net, C[k : k + batch])
            total += float(diff.loss(model, x, g, weight, time_weight)) * len(x)
            count += len(x)
    return total / count


def conditional_batch_model(net, c: torch.Tensor, dropout: float, gen: torch.Generator):
    """Training closure (x, t) -> ε(x, t, c) with each row's condition dropped (replaced by
    the null embedding) with probability ``dropout``."""
    drop = (torch.rand(len(c), generator=gen) < dropout).to(c.device)
    return lambda x, t: net(x, t, c, drop)


class _State:
    """Model, EMA, optimiser and random stream of a run."""

    def __init__(self, cfg: TrainConfig, den: DenoiserConfig, X: torch.Tensor,
                 diff: GaussianDiffusion, C: torch.Tensor | None = None):  # fmt: skip
        torch.manual_seed(cfg.seed)
        self.net = build_denoiser(den).to(cfg.device)
        if isinstance(self.net, GaussianSkip):
            self.net.fit(X.to(cfg.device), diff.alphas_cumprod,
                         None if C is None else C.to(cfg.device))  # fmt: skip
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.metrics: list[dict[str, Any]] = []

    def load(self, ckpt: dict[str, Any]) -> None:
        self.net.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.gen.set_state(ckpt["rng"])
        self.step, self.metrics = int(ckpt["step"]), list(ckpt["metrics"])

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            e.lerp_(p, 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.net.buffers(), strict=True):
            e.copy_(b)


def _prepare(cfg: TrainConfig) -> tuple[FeatureSet, np.ndarray, np.ndarray, Scaler]:
    out = Path(cfg.out)
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not (cfg.resume or cfg.force):
        raise FileExistsError(
            f"{ckpt} exists; pass `resume`=True to continue or `force`=True to restart"
        )
    if cfg.resume and not ckpt.exists():
        raise FileNotFoundError(f"`resume`: there is no checkpoint at {ckpt} to continue from")
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    fs = load_training_features(cfg)
    if not np.isfinite(fs.R).all():
        raise ValueError("training vectors contain NaN or inf")
    train_idx, hold_idx = split_rows(len(fs.ids), cfg.holdout, cfg.seed)
    blocks = [fs.rep.layout.slices["composition"]] if cfg.scaler == "blockwise" else []
    return fs, train_idx, hold_idx, Scaler.fit(fs.R[train_idx], minmax_blocks=blocks)


def training_groups(cfg: TrainConfig, fs: FeatureSet) -> np.ndarray | None:
    """(n,) space group of each training row (0 = unknown) from ``cfg.space_groups``, or None
    without a group condition."""
    if cfg.space_groups is None:
        return None
    from structrepdiff.symmetry.analyze import describe_split, load_group_table

    if cfg.space_groups == "auto":
        dataset, split = fs.source.get("dataset"), fs.source.get("split")
        if dataset is None or split is None:
            raise ValueError("space_groups='auto' needs features that name their dataset and "
                             "split; give a JSON file of {id: group} instead")  # fmt: skip
        rows = describe_split(dataset, split, cfg.out, cfg.data_dir)
        table = {rid: w.sg for rid, _, w in rows}
    else:
        table = load_group_table(cfg.space_groups)
    return np.array([table.get(i, 0) for i in fs.ids], dtype=int)


def _split_condition(cfg: TrainConfig, fs: FeatureSet, Z: np.ndarray,
                     groups: np.ndarray | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """Scaled rows Z (n, D) -> (diffused columns, conditions): all columns and None for an
    unconditional model; the structure columns and the composition + N columns (then the
    `group_features` of ``groups`` (n,), when given) otherwise."""
    Z = torch.as_tensor(Z, dtype=torch.float32)
    if not cfg.conditional:
        return Z.to(cfg.device), None
    mask = torch.as_tensor(condition_mask(fs.rep))
    C = Z[:, mask]
    if groups is not None:
        C = torch.cat([C, torch.as_tensor(group_features(groups))], 1)
    return Z[:, ~mask].to(cfg.device), C.to(cfg.device)


def _unknown_group(C: torch.Tensor) -> torch.Tensor:
    """C (n, cond_dim) with the group columns set to "unknown"."""
    C = C.clone()
    C[:, -GROUP_DIM:] = torch.as_tensor(group_features([0]), device=C.device)
    return C


def _drop_groups(C: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """C with each row's group set to unknown with probability ``p``."""
    drop = (torch.rand(len(C), generator=gen) < p).to(C.device)
    return torch.where(drop[:, None], _unknown_group(C), C)


def _check_resume(cfg: TrainConfig, ckpt: dict[str, Any], path: Path, fs: FeatureSet) -> None:
    if "exported" in ckpt or "optimizer" not in ckpt:
        raise ValueError(f"{path} is an exported (sampling-only) checkpoint and cannot be "
                         "resumed; resume from the training run's checkpoint.pt")  # fmt: skip
    saved = dict(ckpt["train"]["config"])  # fill denoiser fields added since it was written
    saved["denoiser"] = DenoiserConfig.from_dict(saved["denoiser"]).to_dict()
    current = cfg.to_dict()
    for f in fields(TrainConfig):  # options added since the checkpoint was written
        if f.default is not MISSING and f.name in current:
            saved.setdefault(f.name, f.default)
    # bookkeeping that does not change the weights may differ (a moved run folder, say)
    free = ("steps", "out", "eval_every", "checkpoint_every")
    differ = sorted(k for k in set(saved) | set(current)
                    if k not in free and saved.get(k) != current.get(k))  # fmt: skip
    if differ:
        what = "; ".join(f"{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in differ)
        raise ValueError(f"{path} was trained with other settings ({what}); "
                         "use `force`=True to restart")  # fmt: skip
    digest = ckpt["train"].get("features_sha256")
    if digest is not None and digest != features_digest(fs):
        raise ValueError(f"the training features changed since {path} was written (content "
                         "hash differs); use `force`=True to restart on the new data")  # fmt: skip
    if cfg.steps < int(ckpt["step"]):
        raise ValueError(f"`steps` {cfg.steps} is below the checkpoint's step {ckpt['step']}: "
                         "nothing to train (give more steps, or `force`=True to restart)"
                         )  # fmt: skip


def _rewrite_metrics(path: Path, metrics: list[dict]) -> None:
    """metrics.jsonl as the checkpoint knows it: rows logged after its step (a crash between
    an evaluation and the next checkpoint) are dropped, so a resume never logs a step twice."""
    from structrepdiff.data.atomic import atomic_write

    text = "".join(json.dumps(m) + "\n" for m in metrics)
    atomic_write(path, lambda p: p.write_text(text), force=True, suffix=".jsonl")


def _static(
    cfg: TrainConfig,
    fs: FeatureSet,
    scaler: Scaler,
    X: torch.Tensor,
    den: DenoiserConfig,
    diff: GaussianDiffusion,
    train_idx,
    hold_idx,
) -> dict:
    static = {
        "representation": fs.rep.to_dict(), "scaler": scaler_state(scaler),
        "x0_bounds": x0_bounds(X),
        "denoiser": den.to_dict(), "diffusion": diff.config(),
        "train": {"config": cfg.to_dict(), "ids_held_out": [fs.ids[k] for k in hold_idx],
                  "n_train": len(train_idx), "source": fs.source,
                  "features_sha256": features_digest(fs)},
    }  # fmt: skip
    if cfg.conditional:
        static["conditional"] = {"mask": torch.as_tensor(condition_mask(fs.rep)),
                                 "dropout": cfg.cond_dropout}  # fmt: skip
        if cfg.space_groups is not None:
            static["conditional"].update(group_dim=GROUP_DIM, group_dropout=cfg.group_dropout)
    return static


def train(cfg: TrainConfig) -> TrainSummary:
    """Train (or resume) and return the final losses; see the module docstring."""
    from structrepdiff.device import check_device

    check_device(cfg.device)
    t0 = time.perf_counter()
    fs, train_idx, hold_idx, scaler = _prepare(cfg)
    G = training_groups(cfg, fs)
    X, C = _split_condition(cfg, fs, scaler.transform(fs.R[train_idx]),
                            None if G is None else G[train_idx])  # fmt: skip
    V, CV = _split_condition(cfg, fs, scaler.transform(fs.R[hold_idx]),
                             None if G is None else G[hold_idx])  # fmt: skip
    den = replace(cfg.denoiser, dim=X.shape[1], T=cfg.T, cond_dim=0 if C is None else C.shape[1])
    diff = GaussianDiffusion(cfg.T).to(cfg.device)
    weight = None
    if not cfg.conditional:
        weight = feature_weights(fs.rep.layout.slices, X.shape[1], cfg.composition_weight)
        weight = None if weight is None else weight.to(cfg.device)
    tw = diff.min_snr_weights(cfg.min_snr_gamma).float() if cfg.min_snr_gamma else None
    # the Gaussian skip's conditional is fitted on every row twice: with its group and without
    fitX, fitC = (X, C) if G is None else (torch.cat([X, X]), torch.cat([C, _unknown_group(C)]))
    st = _State(cfg, den, fitX, diff, fitC)
    path = Path(cfg.out) / "checkpoint.pt"
    if cfg.resume and path.exists():
        ckpt = load_checkpoint(path, cfg.device)
        _check_resume(cfg, ckpt, path, fs)
        st.load(ckpt)
        _rewrite_metrics(Path(cfg.out) / "metrics.jsonl", st.metrics)
        t0 -= st.metrics[-1]["seconds"] if st.metrics else 0.0  # elapsed time is cumulative
    static = _static(cfg, fs, scaler, X, den, diff, train_idx, hold_idx)
    loss, val = math.nan, math.nan
    bar = tqdm(total=cfg.steps, initial=st.step, disable=not cfg.progress, desc="train")
    while st.step < cfg.steps:
        idx = torch.randint(len(X), (cfg.batch_size,), generator=st.gen)
        c = None if C is None else C[idx]
        if G is not None:
            c = _drop_groups(c, cfg.group_dropout, st.gen)
        model = st.net if C is None else conditional_batch_model(
            st.net, c, cfg.cond_dropout, st.gen)  # fmt: skip
        batch_loss = diff.loss(model, X[idx], st.gen, weight, tw)
        st.opt.zero_grad(set_to_none=True)
        batch_loss.backward()
        st.opt.step()
        st.update_ema(cfg.ema_decay)
        st.step += 1
        loss = float(batch_loss.detach())
        bar.update(1)
        last = st.step == cfg.steps
        if st.step % cfg.eval_every == 0 or last:
            val = validation_loss(diff, st.ema, V, cfg.seed + 1, weight=weight, C=CV,
                                  time_weight=tw)  # fmt: skip
            st.metrics.append({"step": st.step, "train_loss": loss, "val_loss": val,
                               "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
            with open(Path(cfg.out) / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(st.metrics[-1]) + "\n")
            bar.set_postfix(loss=f"{loss:.4f}", val=f"{val:.4f}")
        if st.step % cfg.checkpoint_every == 0 or last:
            save_checkpoint({**static, "step": st.step, "model": st.net.state_dict(),
                             "ema": st.ema.state_dict(), "optimizer": st.opt.state_dict(),
                             "rng": st.gen.get_state(), "metrics": st.metrics}, path)  # fmt: skip
    bar.close()
    if st.metrics:
        loss, val = st.metrics[-1]["train_loss"], st.metrics[-1]["val_loss"]
    return TrainSummary(st.step, loss, val, time.perf_counter() - t0, path)
