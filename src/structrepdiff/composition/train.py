"""Fit a `CompositionModel` to the compositions of a training feature file.

Counts come from R's composition and N/N_max blocks (count = round(fraction · N)); a seeded
``holdout`` fraction is kept for the validation NLL; Adam with a cosine-decayed learning rate;
the weights with the best validation NLL (checked every ``eval_every`` steps) are kept, and
training stops after ``patience`` checks without improvement.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from structrepdiff.composition.model import CompositionModel, CompositionModelConfig
from structrepdiff.features import FeatureSet


@dataclass(frozen=True)
class CompositionTrainConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 2e-3
    holdout: float = 0.05
    eval_every: int = 250
    seed: int = 0
    embed: int = 64
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.1
    weight_decay: float = 0.0
    patience: int = 4  # stop after this many evaluations without a better validation NLL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def counts_from_features(fs: FeatureSet) -> np.ndarray:
    """(n, V) int64 element counts of the rows of a feature file (raw R units)."""
    n = np.rint(fs.block("n_atoms")[:, 0] * fs.rep.n_max).astype(np.int64)
    counts = np.rint(fs.block("composition") * n[:, None]).astype(np.int64)
    bad = counts.sum(1) != n
    if bad.any():
        raise ValueError(f"{int(bad.sum())} rows have fractions that are not k/N (not crystal R)")
    return counts


def train_composition(counts: np.ndarray, atomic_numbers: tuple[int, ...], n_max: int,
                      cfg: CompositionTrainConfig, progress: bool = False
                      ) -> tuple[CompositionModel, dict[str, Any]]:  # fmt: skip
    """Train on (n, V) counts; returns the best-validation model (eval mode) and a record."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(counts))
    k = max(1, round(cfg.holdout * len(counts)))
    hold, train = counts[perm[:k]], counts[perm[k:]]
    mcfg = CompositionModelConfig(tuple(atomic_numbers), n_max, cfg.embed, cfg.hidden,
                                  cfg.layers, cfg.dropout)  # fmt: skip
    model = CompositionModel(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))
    )
    data, held = model.prepare(train), model.prepare(hold)
    best, best_state, history, since = math.inf, None, [], 0
    for step in range(1, cfg.steps + 1):
        model.train()
        idx = rng.integers(0, len(train), cfg.batch_size)
        idx = torch.as_tensor(idx)
        loss = -model.log_prob(*(x[idx] for x in data)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.eval()
            with torch.no_grad():
                val = float(-model.log_prob(*held).mean())
            history.append({"step": step, "train_nll": float(loss.detach()), "val_nll": val})
            if progress:
                print(f"  step {step}: train NLL {history[-1]['train_nll']:.3f}, val NLL {val:.3f}")
            if val < best:
                best, best_state, since = val, copy.deepcopy(model.state_dict()), 0
            else:
                since += 1
                if since >= cfg.patience:
                    break
    model.load_state_dict(best_state)
    record = {"config": cfg.to_dict(), "n_train": len(train), "n_holdout": len(hold),
              "best_val_nll": best, "history": history}  # fmt: skip
    return model.eval(), record


def save_composition_model(model: CompositionModel, record: dict[str, Any], path: Path,
                           force: bool = False) -> None:  # fmt: skip
    """Write ``model.state()`` plus its training ``record`` atomically (refuses to overwrite
    without ``force``); load it with `load_composition_model`."""
    from structrepdiff.features import atomic_write

    if Path(path).exists() and not force:
        raise FileExistsError(f"{path} exists; pass `force`=True to overwrite")
    atomic_write(Path(path), lambda p: torch.save({**model.state(), "train": record}, p),
                 force=True, suffix=".pt")  # fmt: skip


def load_composition_model(path: Path) -> tuple[CompositionModel, dict[str, Any]]:
    """(model in eval mode, training record) of a file from `save_composition_model`."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"composition model {path} does not exist")
    d = torch.load(path, map_location="cpu", weights_only=True)
    return CompositionModel.from_state(d), d.get("train", {})
