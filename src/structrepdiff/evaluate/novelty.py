"""Uniqueness (within the generated set) and novelty (against a reference / training set).

Two crystals are "the same" when pymatgen's ``StructureMatcher`` (default tolerances:
ltol 0.2, stol 0.3, angle_tol 5°, unless a matcher is passed) fits them. The matcher only
fits crystals of equal reduced composition, so comparing only within a reduced formula is
exact, not an approximation; it keeps the cost near linear for diverse sets. Within a formula,
crystals are also split by their number of sites after the matcher's own Niggli + primitive
reduction: without ``attempt_supercell`` (or ``subset``) the matcher cannot fit crystals whose
reduced sizes differ, so this split is exact too, and it is what keeps single-element sets
such as Carbon-24 (one formula for every crystal) affordable. Missing (None) structures are
skipped and counted; a matcher error counts as "no match".
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure


def _fits(matcher: StructureMatcher, a: Structure, b: Structure) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(matcher.fit(a, b))
    except Exception:  # degenerate cells can break the matcher; treat as different
        return False


def _reduced_size(matcher: StructureMatcher, s: Structure) -> int | None:
    """Sites of ``s`` after the reduction ``matcher.fit`` applies (Niggli, then primitive if
    the matcher uses primitive cells); None when sizes cannot split groups exactly (supercell
    or subset matching) or the reduction fails."""
    if getattr(matcher, "_supercell", True) or getattr(matcher, "_subset", True):
        return None
    try:
        reduce = StructureMatcher._get_reduced_structure
        return len(reduce(s, getattr(matcher, "_primitive_cell", True), True))
    except Exception:  # degenerate cells; compare against the whole formula group
        return None


class _Sizes:
    """Lazily computed `_reduced_size` of a list of structures."""

    def __init__(self, matcher: StructureMatcher, structures: Sequence[Structure | None]):
        self.matcher, self.structures, self.cache = matcher, structures, {}

    def __getitem__(self, i: int) -> int | None:
        if i not in self.cache:
            self.cache[i] = _reduced_size(self.matcher, self.structures[i])
        return self.cache[i]


def _comparable(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


def _by_formula(structures: Sequence[Structure | None]) -> dict[str, list[int]]:
    """Indices of the non-None structures grouped by reduced formula."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(structures):
        if s is not None:
            groups[s.composition.reduced_formula].append(i)
    return groups


def uniqueness(
    structures: Sequence[Structure | None], matcher: StructureMatcher | None = None
) -> dict[str, Any]:
    """Fraction of distinct crystals: n_unique / n over the non-None structures.

    Greedy clustering in input order: a crystal joins the first earlier class whose
    representative fits it. Returns uniqueness (NaN if n = 0), n, n_unique, n_skipped and
    labels (class index per input, -1 for None; classes numbered by first appearance).
    """
    matcher = matcher or StructureMatcher()
    size = _Sizes(matcher, structures)
    labels = [-1] * len(structures)
    reps: list[int] = []  # representative input index of each class
    for members in _by_formula(structures).values():
        group_reps: list[int] = []
        for i in members:
            s = structures[i]
            hit = next((r for r in group_reps if _comparable(size[r], size[i])
                        and _fits(matcher, structures[r], s)), None)  # fmt: skip
            if hit is None:
                group_reps.append(i)
                reps.append(i)
            labels[i] = hit if hit is not None else i
    order = {rep: k for k, rep in enumerate(sorted(reps))}
    labels = [order[lab] if lab >= 0 else -1 for lab in labels]
    n = sum(s is not None for s in structures)
    return {
        "uniqueness": len(reps) / n if n else float("nan"),
        "n": n,
        "n_unique": len(reps),
        "n_skipped": len(structures) - n,
        "labels": labels,
    }


_WORKER: dict[str, Any] = {}  # per-process reference set and matcher (see `_set_reference`)


def first_of_class(labels: Sequence[int]) -> list[bool | None]:
    """Per crystal, whether it is the first of its uniqueness class (None for label -1, no
    structure): the per-crystal "unique" flag."""
    seen: set[int] = set()
    out: list[bool | None] = []
    for label in labels:
        out.append(None if label < 0 else label not in seen)
        seen.add(label)
    return out


def _set_reference(reference: Sequence[Structure | None], matcher: StructureMatcher) -> None:
    _WORKER.update(reference=reference, matcher=matcher, sizes=_Sizes(matcher, reference))


def _is_novel(task: tuple[Structure, list[int]]) -> bool:
    """True when ``structure`` fits none of the candidate reference crystals (indices into
    the reference set of this process) whose reduced size is comparable."""
    s, candidates = task
    matcher, reference, ref_size = _WORKER["matcher"], _WORKER["reference"], _WORKER["sizes"]
    size = _reduced_size(matcher, s)
    same = (j for j in candidates if _comparable(size, ref_size[j]))
    return not any(_fits(matcher, s, reference[j]) for j in same)


def _unknown(task, why: str) -> None:
    """Novelty of a crystal whose comparison killed its worker: unknown (not counted)."""
    return None


def novelty(
    structures: Sequence[Structure | None],
    reference: Sequence[Structure | None],
    matcher: StructureMatcher | None = None,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Fraction of generated crystals that fit no reference crystal: n_novel / n.

    Each crystal is checked against the reference crystals of its reduced formula, over
    ``workers`` spawned processes (each receives the reference set once); the result does not
    depend on ``workers``. Returns novelty (NaN if n = 0), n, n_novel, n_skipped and novel
    (per input: True / False, None for a None structure).
    """
    from structrepdiff.evaluate.parallel import parallel_map

    matcher = matcher or StructureMatcher()
    ref_groups = _by_formula(reference)
    order = [i for members in _by_formula(structures).values() for i in members]
    tasks = [(structures[i], ref_groups.get(structures[i].composition.reduced_formula, []))
             for i in order]  # fmt: skip
    flags = parallel_map(_is_novel, tasks, workers, progress, desc="novelty",
                         initializer=_set_reference, initargs=(reference, matcher),
                         on_crash=_unknown)  # fmt: skip
    _WORKER.clear()
    novel: list[bool | None] = [None] * len(structures)
    for i, flag in zip(order, flags, strict=True):
        novel[i] = flag
    n = sum(v is not None for v in novel)
    n_novel = sum(v is True for v in novel)
    return {
        "novelty": n_novel / n if n else float("nan"),
        "n": n,
        "n_novel": n_novel,
        "n_skipped": len(structures) - n,
        "novel": novel,
    }
