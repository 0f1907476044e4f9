"""Wyckoff combinations that hold a composition, enumerated fewest orbits first.

pyxtal's ``list_wyckoff_combinations`` lists every combination before returning, which takes
minutes for some MP-20 sizes (BENCHMARKS, issue 26 part 1). Here the combinations are built
per species in order of orbit count (iterative deepening), each species' list capped, and
joined across species by increasing total orbit count, so the first ``limit`` come at once.
A position without free parameters holds one orbit only, across all species.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from structrepdiff.symmetry.groups import centering_order, group_orbits

Combo = tuple[tuple[int, str], ...]


def _letters(sg: int) -> list[tuple[str, int, bool]]:
    """(letter, primitive multiplicity, has free parameters) of every orbit, highest
    symmetry (smallest multiplicity) first, then by letter."""
    c = centering_order(sg)
    orbits = group_orbits(sg).values()
    rows = [(o.letter, o.multiplicity // c, o.dof > 0) for o in orbits]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def _species_sets(letters, n: int, size: int, start: int = 0) -> Iterator[tuple[int, ...]]:
    """Index tuples (non-decreasing; fixed positions not repeated) of ``size`` orbits whose
    multiplicities sum to ``n``."""
    if size == 0:
        if n == 0:
            yield ()
        return
    for i in range(start, len(letters)):
        m, free = letters[i][1], letters[i][2]
        if m * size > n:  # letters are sorted by multiplicity: the rest are larger still
            break
        for rest in _species_sets(letters, n - m, size - 1, i if free else i + 1):
            yield (i, *rest)


def _per_species(letters, n: int, cap: int) -> list[tuple[int, ...]]:
    """Up to ``cap`` index tuples for one species of ``n`` atoms, fewest orbits first."""
    out: list[tuple[int, ...]] = []
    for size in range(1, n + 1):
        for s in _species_sets(letters, n, size):
            out.append(s)
            if len(out) >= cap:
                return out
    return out


@lru_cache(maxsize=8192)
def wyckoff_combinations(sg: int, counts: tuple[int, ...], limit: int = 20,
                         cap: int = 64) -> tuple[Combo, ...]:  # fmt: skip
    """Up to ``limit`` patterns ((species rank, letter), ...) of group ``sg`` that put
    ``counts[r]`` atoms of species rank r in the primitive cell; fewest orbits in total
    first. Each species considers its ``cap`` smallest combinations."""
    letters = _letters(sg)
    options = [_per_species(letters, n, cap) for n in counts]
    if any(not o for o in options):
        return ()
    lo = sum(len(o[0]) for o in options)
    hi = sum(len(o[-1]) for o in options)
    out: list[Combo] = []
    for total in range(lo, hi + 1):
        for choice in _join(letters, options, 0, total, frozenset()):
            out.append(tuple((r, letters[i][0]) for r, s in enumerate(choice) for i in s))
            if len(out) >= limit:
                return tuple(out)
    return tuple(out)


def _join(letters, options, r: int, total: int, used: frozenset) -> Iterator[tuple]:
    """Choices for species r.. with exactly ``total`` orbits, each fixed position (no free
    parameter) used once across species (``used``: those taken by species before r)."""
    if r == len(options):
        if total == 0:
            yield ()
        return
    for s in options[r]:
        if len(s) > total:
            break  # each species' list is ordered by size
        fixed = frozenset(i for i in s if not letters[i][2])
        if fixed & used:
            continue
        for rest in _join(letters, options, r + 1, total - len(s), used | fixed):
            yield (s, *rest)
