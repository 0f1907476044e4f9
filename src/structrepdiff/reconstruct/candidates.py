"""Decoding as a choice among symmetric candidates (issue #26, deliverable 6).

For each target the space-group prior proposes its ``k`` most likely (group, Wyckoff pattern)
pairs; each is reconstructed inside its group (`reconstruct_symmetric`), and the pick is the
most symmetric candidate whose loss is within (1 + α) of the best one — a MAP decoder that does
not fit the noise of a generated vector with a distorted low-symmetry crystal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from structrepdiff.reconstruct.optimize import Target
from structrepdiff.reconstruct.symmetric import (
    SymmetricConfig,
    SymOutcome,
    SymTarget,
    SymTemplates,
    reconstruct_symmetric,
)
from structrepdiff.symmetry.assign import no_group_reason
from structrepdiff.symmetry.prior import SpaceGroupPrior


@lru_cache(maxsize=256)
def point_group_order(sg: int) -> int:
    """Operations of the point group of ``sg`` (1 for P1, 48 for m-3m)."""
    from structrepdiff.symmetry.groups import centering_order, group_orbits

    general = max(o.multiplicity for o in group_orbits(sg).values())
    return general // centering_order(sg)


@dataclass
class Candidates:
    """Every candidate of one target, and the index of the chosen one (None: none built)."""

    id: str
    outcomes: list[SymOutcome]
    reasons: list[str]
    chosen: int | None

    @property
    def best(self) -> SymOutcome | None:
        return None if self.chosen is None else self.outcomes[self.chosen]


def choose(outcomes: list[SymOutcome], alpha: float) -> int | None:
    """Index of the candidate of highest point-group order (then lowest loss) among those
    with descriptor loss ≤ (1 + α) × the lowest; None for no candidates."""
    losses = [o.descriptor_loss for o in outcomes]
    finite = [x for x in losses if math.isfinite(x)]
    if not finite:
        return None
    bound = (1 + alpha) * min(finite)
    ok = [k for k, x in enumerate(losses) if math.isfinite(x) and x <= bound]
    return max(ok, key=lambda k: (point_group_order(outcomes[k].sg), -losses[k]))


def reconstruct_candidates(
    targets: list[Target], prior: SpaceGroupPrior, cfg: SymmetricConfig, ead, k: int = 5,
    alpha: float = 0.1, templates: SymTemplates | None = None,
) -> list[Candidates]:  # fmt: skip
    """Reconstruct each target in its ``k`` most likely groups and patterns and choose one
    (`choose`). A target no pattern holds gets no candidate and a reason."""
    sts, owner, reasons = [], [], {t.id: [] for t in targets}
    for i, t in enumerate(targets):
        dist = prior.distribution(t.numbers)[:k]
        if not dist:
            reasons[t.id].append(no_group_reason(t.numbers))
        for _, sg, pattern in dist:
            sts.append(SymTarget(t, sg, pattern))
            owner.append(i)
    starts = [templates.starts(st) for st in sts] if templates is not None else None
    outs = reconstruct_symmetric(sts, ead, cfg, starts)
    per: list[list[SymOutcome]] = [[] for _ in targets]
    for i, o in zip(owner, outs, strict=True):
        if isinstance(o, SymOutcome):
            per[i].append(o)
        else:
            reasons[targets[i].id].append(o[1])
    return [Candidates(t.id, per[i], reasons[t.id], choose(per[i], alpha))
            for i, t in enumerate(targets)]  # fmt: skip
