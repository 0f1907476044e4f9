"""A learned p(space group | composition) times the counted p(Wyckoff pattern | group,
composition): the prior the candidate decoder and generation draw from.

The classifier is a small MLP on composition features (atom count, anonymous formula and
min / mean / max of five element properties); it ranks the right group first more often than
counting anonymous formulas (BENCHMARKS, issue 26). The pattern within a group comes from the
counting prior's tables (training crystals with the same anonymous formula and group), backed
off to the group's Wyckoff combinations that hold the composition, fewest orbits first.
Everything round-trips through a dict of tensors, numbers and strings (`state`), so it rides
in a ``weights_only`` checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from structrepdiff.symmetry.prior import Pattern, PriorBase, SpaceGroupPrior, anonymous_formula

# pyxtal tolerances (Å) of the crystals a prior is fitted on, one per use (measured on
# Perov-5, BENCHMARKS "Issue 26, part 3"): 0.01 Å ranks the right group first more often
# (structure prediction 55.3 vs 50.6 %); 0.1 Å, spglib's tolerance in the evaluator, draws
# the data's group histogram (space-group chi2 0.011 vs 0.80 for generated crystals).
PREDICTION_TOL = 0.01
GENERATION_TOL = 0.1

PROPERTIES = ("X", "atomic_radius", "mendeleev_no", "row", "group")
N_FEATURES = 7 + 3 * len(PROPERTIES)


@lru_cache(maxsize=1)
def _element_table() -> np.ndarray:
    """(119, 5) element properties by Z (0 where pymatgen has none)."""
    import warnings

    from pymatgen.core import Element

    table = np.zeros((119, len(PROPERTIES)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, 119):
            el = Element.from_Z(z)
            for k, prop in enumerate(PROPERTIES):
                try:
                    v = float(getattr(el, prop) or 0.0)
                except (TypeError, ValueError, AttributeError):
                    v = 0.0
                table[z, k] = v if np.isfinite(v) else 0.0
    return table


def composition_features(numbers) -> np.ndarray:
    """(N_FEATURES,) N, species count, anonymous formula (5 largest counts, zero-padded) and
    min / mean / max of each element property over the atoms."""
    z = np.asarray(numbers, dtype=int)
    anon = list(anonymous_formula(z))
    props = _element_table()[z]
    head = [len(z), len(anon), *([0] * max(0, 5 - len(anon)) + anon[-5:])]
    return np.concatenate([head, props.min(0), props.mean(0), props.max(0)])


@dataclass(frozen=True)
class GroupClassifierConfig:
    """MLP ``hidden`` × ``depth`` with dropout, AdamW for ``steps`` batches; ``top`` groups
    (the most likely, with probability ≥ ``min_prob``) are proposed per composition. The
    defaults are the best of six settings on a seeded 80/20 split of MP-20's val split
    (group top-1 56.2 %; BENCHMARKS, issue 26 part 2)."""

    hidden: int = 512
    depth: int = 3
    dropout: float = 0.2
    lr: float = 2e-3
    weight_decay: float = 1e-4
    steps: int = 3000
    batch_size: int = 256
    seed: int = 0
    top: int = 8
    min_prob: float = 1e-3


class GroupClassifier(nn.Module):
    """logits (n, 230) of groups 1–230 from `composition_features` rows (n, N_FEATURES)."""

    def __init__(self, cfg: GroupClassifierConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        width = N_FEATURES
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), nn.SiLU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 230))
        self.register_buffer("mean", torch.zeros(N_FEATURES))
        self.register_buffer("std", torch.ones(N_FEATURES))
        self.register_buffer("seen", torch.ones(230, dtype=torch.bool))  # groups in training

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits (n, 230); groups no training crystal had are -inf."""
        logits = self.net((feats - self.mean) / self.std)
        return logits.masked_fill(~self.seen, float("-inf"))

    @torch.no_grad()
    def probs(self, numbers) -> np.ndarray:
        """(230,) p(group 1..230 | composition ``numbers``)."""
        x = torch.as_tensor(composition_features(numbers), dtype=torch.float32)[None]
        return torch.softmax(self.eval()(x), 1)[0].double().numpy()


def train_group_classifier(items, cfg: GroupClassifierConfig | None = None) -> GroupClassifier:
    """Fit on (numbers (n,), group) of the training crystals (cross-entropy, seeded)."""
    cfg = cfg or GroupClassifierConfig()
    X = torch.as_tensor(np.stack([composition_features(n) for n, _ in items]),
                        dtype=torch.float32)  # fmt: skip
    y = torch.as_tensor([int(g) - 1 for _, g in items])
    torch.manual_seed(cfg.seed)
    clf = GroupClassifier(cfg)
    clf.mean.copy_(X.mean(0))
    clf.std.copy_(X.std(0).clamp(min=0.1))  # a feature constant in training stays tame
    clf.seen.copy_(torch.bincount(y, minlength=230) > 0)
    opt = torch.optim.AdamW(clf.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    clf.train()
    for _ in range(cfg.steps):
        idx = torch.randint(len(X), (cfg.batch_size,), generator=gen)
        loss = nn.functional.cross_entropy(clf(X[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return clf.eval()


@dataclass
class LearnedPrior(PriorBase):
    """p(group, pattern | composition) = classifier(group) × counted(pattern | group); the
    same interface as `SpaceGroupPrior` (``distribution``, ``sample``)."""

    counting: SpaceGroupPrior
    classifier: GroupClassifier

    @classmethod
    def fit(cls, items, cfg: GroupClassifierConfig | None = None) -> LearnedPrior:
        """From (numbers (n,), group, pattern) of the training crystals."""
        items = list(items)
        clf = train_group_classifier([(n, g) for n, g, _ in items], cfg)
        return cls(SpaceGroupPrior.fit(items), clf)

    def _distribution(self, numbers) -> list[tuple[float, int, Pattern]]:
        """The classifier's ``top`` groups (probability ≥ ``min_prob``, the first always)
        with their patterns; where none holds the composition, the counting prior's
        distribution (its back-off covers the groups seen at this size)."""
        cfg = self.classifier.cfg
        p = self.classifier.probs(numbers)
        out = []
        for g in np.argsort(-p)[: cfg.top]:
            if (p[g] < cfg.min_prob and out) or p[g] <= 0:
                break
            for q, pat in self.counting.patterns(numbers, int(g) + 1):
                out.append((float(p[g]) * q, int(g) + 1, pat))
        z = sum(r[0] for r in out)
        if not out or not z > 0:  # none of the likely groups holds it: count-based back-off
            return self.counting.distribution(numbers)
        return sorted(((r[0] / z, r[1], r[2]) for r in out), key=lambda r: (-r[0], r[1], r[2]))

    def patterns(self, numbers, sg: int) -> list[tuple[float, Pattern]]:
        """p(pattern | group ``sg``, composition), from the counting tables."""
        return self.counting.patterns(numbers, sg)

    def state(self) -> dict[str, Any]:
        weights = {k: v.clone() for k, v in self.classifier.state_dict().items()}
        return {"kind": "learned", "counting": self.counting.to_dict(),
                "config": asdict(self.classifier.cfg), "weights": weights}  # fmt: skip

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> LearnedPrior:
        clf = GroupClassifier(GroupClassifierConfig(**d["config"]))
        clf.load_state_dict(d["weights"])
        return cls(SpaceGroupPrior.from_dict(d["counting"]), clf.eval())


def fit_prior(dataset: str, split: str, data_dir: str | None = None,
              cache_dir: str | None = None, cfg: GroupClassifierConfig | None = None,
              tol: float = PREDICTION_TOL) -> LearnedPrior:  # fmt: skip
    """The prior of one dataset split (its crystals described by pyxtal at ``tol`` Å, cached)."""
    from structrepdiff.symmetry.analyze import cached_description

    rows = cached_description(dataset, split, data_dir, cache_dir, tol)
    if not rows:
        raise ValueError(f"pyxtal described no crystal of {dataset}/{split}")
    return LearnedPrior.fit([(numbers, w.sg, w.pattern) for _, numbers, w in rows], cfg)


def load_prior(path) -> LearnedPrior:
    """A prior saved with ``torch.save(prior.state(), path)``; one-line errors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return LearnedPrior.from_state(state)
    except FileNotFoundError:
        raise FileNotFoundError(f"space-group prior {path} does not exist") from None
    except Exception as exc:  # torch raises many kinds on foreign files
        raise ValueError(f"{path} is not a space-group prior ({type(exc).__name__})") from None
