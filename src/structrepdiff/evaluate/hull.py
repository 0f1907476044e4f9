"""Energy above a convex hull of formation energies, and the S.U.N. rates (issue #13).

All energies are per atom on one scale (eV/atom; CHGNet's MP2020-corrected scale in this
project). A hull is built from

- elemental chemical potentials μ_el (the lowest energy per atom of each element's crystals);
- reference points: (composition, formation energy per atom, source), e.g. a potential's
  energy of a dataset crystal minus Σ x_el μ_el, or a *virtual* point at the DFT formation
  energy minus the dataset's DFT e_above_hull, which puts the dataset's own hull back where
  the crystals that built it are missing.

``e_above_hull`` builds pymatgen's ``PhaseDiagram`` lazily, once per chemical system, from
the points whose elements lie inside it. Pure functions: a failure is a reason, never an
exception. This module imports no model code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from structrepdiff.evaluate.result import Result, exception_reason, fail

STABLE_THRESHOLD = 0.1  # eV/atom (MatterGen's "stable")


@dataclass(frozen=True)
class HullPoint:
    """One reference point: formula, formation energy (eV/atom), where it came from, and the
    id of the crystal it stands for (so a crystal can be left out of its own reference)."""

    formula: str
    e_form: float
    source: str = ""
    id: str = ""


@dataclass
class ReferenceHull:
    """Elemental chemical potentials ``mu`` (eV/atom) and formation-energy points."""

    mu: dict[str, float]
    points: list[HullPoint]
    provenance: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def formation_energy(self, composition: Composition, energy_per_atom: float) -> Result:
        """E_form per atom = E/atom − Σ x_el μ_el, or a reason (an element without μ)."""
        comp = Composition(composition).fractional_composition
        missing = sorted(str(el) for el in comp if str(el) not in self.mu)
        if missing:
            return fail(f"no elemental reference for {', '.join(missing)}")
        return Result(energy_per_atom - sum(x * self.mu[str(el)] for el, x in comp.items()))

    def _elements(self) -> list[frozenset[str]]:
        if "_elements" not in self._cache:
            self._cache["_elements"] = [frozenset(str(el) for el in Composition(p.formula))
                                        for p in self.points]  # fmt: skip
        return self._cache["_elements"]

    def _diagram(self, system: frozenset[str], exclude: frozenset[str]) -> PhaseDiagram:
        key = (system, exclude)
        if key not in self._cache:
            entries = [PDEntry(Composition(el), 0.0) for el in system]
            for p, els in zip(self.points, self._elements(), strict=True):
                if els <= system and p.id not in exclude:
                    comp = Composition(p.formula)
                    entries.append(PDEntry(comp, p.e_form * comp.num_atoms))
            if exclude:  # leave-one-out diagrams are used once: keep only the shared ones
                return PhaseDiagram(entries)
            self._cache[key] = PhaseDiagram(entries)
        return self._cache[key]

    def e_above_hull(self, composition: Composition, energy_per_atom: float,
                     exclude: frozenset[str] = frozenset()) -> Result:  # fmt: skip
        """E_hull (eV/atom; negative below the hull) of a crystal of ``composition`` with the
        given energy per atom, or a reason; points whose id is in ``exclude`` are left out."""
        ef = self.formation_energy(composition, energy_per_atom)
        if not ef.ok:
            return ef
        comp = Composition(composition)
        try:
            pd = self._diagram(frozenset(str(el) for el in comp), frozenset(exclude))
            entry = PDEntry(comp, ef.value * comp.num_atoms)
            _, e = pd.get_decomp_and_e_above_hull(entry, allow_negative=True)
            return Result(float(e))
        except Exception as exc:  # pymatgen's hull code on degenerate input
            return fail(exception_reason("hull failed", exc))

    def save(self, path: str | Path) -> None:
        """JSON at ``path``, gzip-compressed when it ends in .gz."""
        import gzip

        data = {"mu": self.mu, "points": [p.__dict__ for p in self.points],
                "provenance": self.provenance}  # fmt: skip
        raw = json.dumps(data).encode()
        Path(path).write_bytes(gzip.compress(raw, mtime=0) if str(path).endswith(".gz") else raw)

    @classmethod
    def load(cls, path: str | Path) -> ReferenceHull:
        """A hull written by `save` (.json or .json.gz); ValueError for anything else."""
        import gzip

        try:
            raw = Path(path).read_bytes()
            data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
            mu = {str(k): float(v) for k, v in data["mu"].items()}
            points = [HullPoint(**p) for p in data["points"]]
            bad = [k for k, v in mu.items() if not math.isfinite(v)]
            bad += [p.formula for p in points if not math.isfinite(float(p.e_form))]
            if bad:
                raise ValueError(f"non-finite energies for {', '.join(bad[:5])}")
            return cls(mu, points, dict(data["provenance"]))
        except FileNotFoundError:
            raise FileNotFoundError(f"reference hull {path} does not exist") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            why = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
            raise ValueError(f"{path} is not a reference hull ({why})") from None


def elemental_mu(entries: Iterable[tuple[Composition, float]]) -> dict[str, float]:
    """Lowest energy per atom of each single-element crystal among ``entries``
    (composition, energy per atom)."""
    mu: dict[str, float] = {}
    for comp, e in entries:
        comp = Composition(comp)
        if len(comp.elements) == 1:
            el = str(comp.elements[0])
            mu[el] = min(e, mu.get(el, float("inf")))
    return mu


@dataclass(frozen=True)
class SunRates:
    """Stability rates (%) of a set, over all crystals asked about (a crystal without E_hull
    counts as not stable); ``mean_e_hull`` over crystals with one."""

    n: int
    n_with_e_hull: int
    stable_pct: float  # E_hull < threshold
    strict_stable_pct: float  # E_hull ≤ 0
    sun_pct: float  # E_hull < threshold ∧ unique ∧ novel (MatterGen's S.U.N.)
    sun_strict_pct: float  # E_hull ≤ 0 ∧ unique ∧ novel
    mean_e_hull: float | None


def sun_rates(e_hull: Sequence[float | None], unique: Sequence[bool], novel: Sequence[bool],
              threshold: float = STABLE_THRESHOLD) -> SunRates:  # fmt: skip
    """S.U.N. rates from per-crystal E_hull (None: none), uniqueness and novelty flags.

    ``sun_pct`` uses MatterGen's "stable" (E_hull < 0.1 eV/atom), ``sun_strict_pct`` the hull
    itself (E_hull ≤ 0). LeMat-GenBench names the same two rates MetaSUN and SUN."""
    if not len(e_hull) == len(unique) == len(novel):
        raise ValueError("e_hull, unique and novel need one entry per crystal")
    n = len(e_hull)
    have = [e for e in e_hull if e is not None]
    stable = [e is not None and e < threshold for e in e_hull]
    strict = [e is not None and e <= 0 for e in e_hull]

    def pct(flags) -> float:
        return 100.0 * sum(flags) / n if n else 0.0

    return SunRates(
        n, len(have), pct(stable), pct(strict),
        pct(s and u and v for s, u, v in zip(stable, unique, novel, strict=True)),
        pct(s and u and v for s, u, v in zip(strict, unique, novel, strict=True)),
        sum(have) / len(have) if have else None,
    )  # fmt: skip
