"""p(space group, Wyckoff pattern | composition), learned from the training split by counting.

A training crystal contributes its (group, anonymous pattern) to its anonymous formula (the
sorted atom counts per species, e.g. (1, 1, 3) for ABX3). Species are anonymised by rank: by
atom count, then Pauling electronegativity, so a pattern transfers cation to cation when it is
instantiated for a new composition. Compositions whose anonymous formula no training crystal
has back off to the groups seen with the same atom count and number of species (else to all
groups seen), each with the Wyckoff combinations that hold the composition (fewest orbits
first, `wyckoff_combinations`). Every
proposed pattern holds the composition exactly (`pattern_problem` is None).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from structrepdiff.symmetry.combos import wyckoff_combinations
from structrepdiff.symmetry.groups import pattern_problem

Pattern = tuple[tuple[int, str], ...]


def _ranked_species(numbers) -> list[int]:
    """Species of ``numbers`` ordered by (atom count, electronegativity, Z)."""
    from pymatgen.core import Element

    zs, counts = np.unique(np.asarray(numbers, dtype=int), return_counts=True)
    chi = [Element.from_Z(int(z)).X for z in zs]
    chi = [x if isinstance(x, float) and math.isfinite(x) else 0.0 for x in chi]
    order = sorted(range(len(zs)), key=lambda k: (counts[k], chi[k], zs[k]))
    return [int(zs[k]) for k in order]


def anonymous_formula(numbers) -> tuple[int, ...]:
    """Sorted atom counts per species, e.g. (1, 1, 3)."""
    return tuple(sorted(np.unique(np.asarray(numbers, dtype=int), return_counts=True)[1].tolist()))


def anonymize(numbers, pattern: Pattern) -> tuple[tuple[int, str], ...]:
    """``pattern`` with each Z replaced by its species rank (`_ranked_species`), sorted."""
    rank = {z: k for k, z in enumerate(_ranked_species(numbers))}
    return tuple(sorted((rank[int(z)], x) for z, x in pattern))


def instantiate(numbers, anon: tuple[tuple[int, str], ...]) -> Pattern:
    """The anonymous pattern written with the species of ``numbers``."""
    species = _ranked_species(numbers)
    return tuple((species[r], x) for r, x in anon)


class PriorBase:
    """What every space-group prior offers on top of its ``_distribution(numbers)``: the cached
    ``distribution`` and seeded ``sample``."""

    def distribution(self, numbers) -> list[tuple[float, int, Pattern]]:
        """(probability, group, pattern) for the composition ``numbers``, most likely first;
        empty when no pattern of any seen group holds it. Cached per composition."""
        key = tuple(sorted(int(z) for z in numbers))
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = self._distribution(key)
        return list(cache[key])

    def sample(self, numbers, k: int, rng: np.random.Generator) -> list[tuple[int, Pattern]]:
        """``k`` draws of (group, pattern) for ``numbers`` (with replacement)."""
        dist = self.distribution(numbers)
        if not dist:
            return []
        p = np.array([d[0] for d in dist])
        return [(dist[i][1], dist[i][2]) for i in rng.choice(len(dist), k, p=p / p.sum())]


@dataclass
class SpaceGroupPrior(PriorBase):
    """Counts of (group, anonymous pattern) per anonymous formula, and of groups per
    (atom count, species count), from a training split."""

    by_formula: dict[tuple[int, ...], Counter] = field(default_factory=dict)
    by_size: dict[tuple[int, int], Counter] = field(default_factory=dict)
    backoff_weight: float = 0.5
    max_combinations: int = 20
    backoff_groups: int = 8

    @classmethod
    def fit(cls, items) -> SpaceGroupPrior:
        """From (numbers (n,), group, pattern) of the training crystals."""
        by_formula: dict = defaultdict(Counter)
        by_size: dict = defaultdict(Counter)
        for numbers, sg, pattern in items:
            key = anonymous_formula(numbers)
            by_formula[key][(int(sg), anonymize(numbers, pattern))] += 1
            by_size[(len(numbers), len(key))][int(sg)] += 1
        return cls(dict(by_formula), dict(by_size))

    def _backoff(self, numbers) -> dict[tuple[int, Pattern], float]:
        """Patterns of the ``backoff_groups`` groups seen most often at this size, weighted
        by the group's count, split evenly over the combinations that hold the composition
        (more groups cost pyxtal's combinatorics for little mass)."""
        key = (len(numbers), len(anonymous_formula(numbers)))
        groups = self.by_size.get(key) or sum(self.by_size.values(), Counter())
        out: dict[tuple[int, Pattern], float] = {}
        top = groups.most_common(self.backoff_groups)
        total = sum(n for _, n in top)
        for sg, n in top:
            pats = combinations(sg, numbers, self.max_combinations)
            for p in pats:
                out[(sg, p)] = out.get((sg, p), 0.0) + n / total / len(pats)
        return out

    def _distribution(self, numbers) -> list[tuple[float, int, Pattern]]:
        seen = self.by_formula.get(anonymous_formula(numbers), Counter())
        n_seen = sum(seen.values())
        probs: dict[tuple[int, Pattern], float] = {}
        for (sg, anon), n in seen.items():
            pat = instantiate(numbers, anon)
            if pattern_problem(sg, pat, numbers) is None:
                probs[(sg, pat)] = n / (n_seen + self.backoff_weight)
        w_back = self.backoff_weight / (n_seen + self.backoff_weight) if probs else 1.0
        for k, p in self._backoff(numbers).items():
            probs[k] = probs.get(k, 0.0) + w_back * p
        z = sum(probs.values())
        ranked = sorted(((p / z, sg, pat) for (sg, pat), p in probs.items()),
                        key=lambda r: (-r[0], r[1], r[2]))  # fmt: skip
        return ranked

    def patterns(self, numbers, sg: int) -> list[tuple[float, Pattern]]:
        """p(pattern | group ``sg``, composition ``numbers``), most likely first: the patterns
        training crystals of the same anonymous formula had in ``sg``, and with weight
        ``backoff_weight`` (all of it when none) the group's combinations that hold the
        composition, fewest orbits first. Empty when no pattern of ``sg`` holds it."""
        seen = self.by_formula.get(anonymous_formula(numbers), Counter())
        probs: dict[Pattern, float] = {}
        for (g, anon), n in seen.items():
            pat = instantiate(numbers, anon)
            if g == sg and pattern_problem(sg, pat, numbers) is None:
                probs[pat] = probs.get(pat, 0.0) + n
        n_seen = sum(probs.values())
        back = combinations(sg, numbers, self.max_combinations)
        for pat in back:
            w = self.backoff_weight if n_seen else 1.0
            probs[pat] = probs.get(pat, 0.0) + w / len(back)
        z = sum(probs.values())
        order = {p: k for k, p in enumerate(back)}
        return sorted(((q / z, p) for p, q in probs.items()),
                      key=lambda r: (-r[0], order.get(r[1], -1), r[1]))  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "by_formula": [[list(k), [[sg, [list(x) for x in anon], n]
                                      for (sg, anon), n in c.items()]]
                           for k, c in self.by_formula.items()],
            "by_size": [[list(k), [[sg, n] for sg, n in c.items()]]
                        for k, c in self.by_size.items()],
            "backoff_weight": self.backoff_weight, "max_combinations": self.max_combinations,
            "backoff_groups": self.backoff_groups,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> SpaceGroupPrior:
        by_formula = {
            tuple(k): Counter({(sg, tuple((r, x) for r, x in anon)): n for sg, anon, n in v})
            for k, v in d["by_formula"]
        }
        by_size = {tuple(k): Counter({sg: n for sg, n in v}) for k, v in d["by_size"]}
        return cls(by_formula, by_size, d["backoff_weight"], d["max_combinations"],
                   d.get("backoff_groups", 8))  # fmt: skip

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> SpaceGroupPrior:
        return cls.from_dict(json.loads(Path(path).read_text()))


def combinations(sg: int, numbers, limit: int = 20) -> list[Pattern]:
    """Up to ``limit`` Wyckoff patterns of ``sg`` that hold the composition ``numbers`` as a
    primitive cell, fewest orbits first (`wyckoff_combinations`)."""
    species = _ranked_species(numbers)
    zs, counts = np.unique(np.asarray(numbers, dtype=int), return_counts=True)
    count = dict(zip(zs.tolist(), counts.tolist(), strict=True))
    anon = wyckoff_combinations(sg, tuple(count[z] for z in species), limit)
    return [tuple((species[r], x) for r, x in pat) for pat in anon]
