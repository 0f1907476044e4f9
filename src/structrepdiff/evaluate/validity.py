"""Structure and composition validity, as CDVAE's ``structure_validity`` / ``smact_validity``.

Structure validity (CDVAE ``scripts/eval_utils.py``): the cell volume is at least 0.1 Å³ and
every pair of *distinct* sites is at least 0.5 Å apart. Distances are pymatgen's
``Structure.distance_matrix``, i.e. minimum-image distances between sites i != j; CDVAE adds
``cutoff + 10`` to the diagonal, so a site's distance to its own periodic images is never
checked (a one-atom cell with a 0.3 Å lattice vector and volume >= 0.1 Å³ is valid). We follow
that exactly.

Composition validity (CDVAE ``smact_validity`` with ``use_pauling_test=True``,
``include_alloys=True``, run under ``smact==2.2.1``): counts are reduced by their gcd; a single
element is valid; a composition of SMACT metals only is valid; otherwise it is valid when some
assignment of SMACT-14 oxidation states (one per element) is charge neutral for the reduced
counts and passes the Pauling test (every cation less electronegative than every anion).
With ``legacy_smact=True`` (default) three details of SMACT 2.2.1 under CDVAE are reproduced:
its Ir oxidation states and Zr electronegativity (see :mod:`cdvae_constants`), and its
handling of a missing electronegativity (He, Ne, Ar, Pm, Rn, Lr): comparing a cation with an
anion when one of them has none raised ``TypeError``, which CDVAE caught and counted as
*passing*; a missing value in any other pair failed the test. ``legacy_smact=False`` uses the
installed SMACT's SMACT-14 data and ``smact.screening.pauling_test`` instead.
"""

from __future__ import annotations

import itertools
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from functools import cache, reduce
from math import gcd

import numpy as np
from pymatgen.core import Structure

from structrepdiff.evaluate.cdvae_constants import (
    SMACT_2_2_1_OXIDATION_STATES,
    SMACT_2_2_1_PAULING_ENEG,
)
from structrepdiff.evaluate.result import Result, exception_reason
from structrepdiff.evaluate.structures import CompositionLike, as_composition

STRUCT_DIST_CUTOFF = 0.5  # Å
STRUCT_MIN_VOLUME = 0.1  # Å³
# Meet-in-the-middle bound on oxidation-state combinations kept in memory (per half).
MAX_HALF_COMBINATIONS = 2_000_000


def structure_validity(
    structure: Structure | None,
    cutoff: float = STRUCT_DIST_CUTOFF,
    min_volume: float = STRUCT_MIN_VOLUME,
) -> Result[bool]:
    """CDVAE structure validity: volume >= ``min_volume`` Å³ and distinct sites >= ``cutoff`` Å.

    Returns ``Result(True, None)`` or ``Result(False, reason)``; never raises. A None
    structure, no atoms, or a non-finite cell is invalid with a reason.
    """
    if structure is None:
        return Result(False, "no structure")
    if len(structure) == 0:
        return Result(False, "no atoms")
    matrix = structure.lattice.matrix
    if not (np.isfinite(matrix).all() and np.isfinite(structure.frac_coords).all()):
        return Result(False, "non-finite lattice or coordinates")
    volume = float(structure.volume)
    if volume < min_volume:
        return Result(
            False, f"unrealistically small lattice: volume {volume:.3g} Å³ < {min_volume} Å³"
        )
    try:
        dist = structure.distance_matrix + np.eye(len(structure)) * (cutoff + 10.0)
    except Exception as exc:  # a degenerate cell can break pymatgen's image search
        return Result(False, exception_reason("distance computation failed", exc))
    i, j = np.unravel_index(np.argmin(dist), dist.shape)
    if dist[i, j] < cutoff:
        return Result(
            False, f"atoms too close: sites {i} and {j} are {dist[i, j]:.3f} Å apart (< {cutoff} Å)"
        )
    return Result(True)


def composition_validity(composition: CompositionLike, legacy_smact: bool = True) -> Result[bool]:
    """CDVAE/SMACT composition validity (charge neutrality + Pauling test, SMACT-14 states).

    composition: a Composition, Structure, mapping or per-atom list of symbols / atomic
    numbers; amounts must be integers (they are reduced by their gcd, as CDVAE does).
    Returns ``Result(True, None)`` or ``Result(False, reason)``; never raises.
    """
    parsed = _integer_counts(composition)
    if not parsed.ok:
        return Result(False, parsed.reason)
    symbols, counts = parsed.value
    try:
        data = [_smact_element(s, legacy_smact) for s in symbols]
    except KeyError as exc:
        return Result(False, exception_reason("no SMACT data for element", exc))
    if len(symbols) == 1:
        return Result(True)
    if all(_is_smact_metal(s) for s in symbols):
        return Result(True)
    ox_lists = [ox for ox, _ in data]
    enegs = [eneg for _, eneg in data]
    empty = [s for s, ox in zip(symbols, ox_lists, strict=True) if not ox]
    if empty:
        return Result(False, f"not charge balanced: no SMACT-14 oxidation states for {empty}")
    return _search_oxidation_states(ox_lists, counts, enegs, legacy_smact)


def _integer_counts(composition: CompositionLike) -> Result[tuple[list[str], list[int]]]:
    """Element symbols sorted by Z and their gcd-reduced integer counts, or a reason."""
    comp = as_composition(composition)
    if not comp.ok:
        return Result(None, comp.reason)
    items = sorted(comp.value.element_composition.items(), key=lambda kv: kv[0].Z)
    items = [(el, amt) for el, amt in items if amt > 1e-8]
    if not items:
        return Result(None, "empty composition")
    amounts = np.array([amt for _, amt in items], dtype=float)
    if np.abs(amounts - np.round(amounts)).max() > 1e-6:
        return Result(None, f"non-integer amounts: {comp.value.formula}")
    counts = [round(float(a)) for a in amounts]
    g = reduce(gcd, counts)
    return Result(([el.symbol for el, _ in items], [c // g for c in counts]))


@cache
def _smact_element(symbol: str, legacy: bool) -> tuple[tuple[int, ...], float | None]:
    """SMACT-14 oxidation states and Pauling electronegativity of one element (KeyError if
    SMACT has no data for it); with ``legacy`` the SMACT 2.2.1 values where they differ."""
    import smact

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        element = smact.Element(symbol)
    ox = tuple(element.oxidation_states_smact14 or ())
    eneg = element.pauling_eneg
    if legacy:
        ox = SMACT_2_2_1_OXIDATION_STATES.get(symbol, ox)
        eneg = SMACT_2_2_1_PAULING_ENEG.get(symbol, eneg)
    return ox, eneg


def _is_smact_metal(symbol: str) -> bool:
    import smact

    return symbol in smact.metals


def _search_oxidation_states(
    ox_lists: Sequence[tuple[int, ...]],
    counts: Sequence[int],
    enegs: Sequence[float | None],
    legacy: bool,
) -> Result[bool]:
    """Valid if some charge-neutral assignment of oxidation states passes the Pauling test."""
    half_sizes = [int(np.prod([len(o) for o in part])) for part in _halves(ox_lists)]
    if max(half_sizes) > MAX_HALF_COMBINATIONS:
        total = half_sizes[0] * half_sizes[1]
        return Result(False, f"not evaluated: too many oxidation-state combinations ({total:.3g})")
    n_neutral = 0
    for ox_states in _neutral_assignments(ox_lists, counts):
        n_neutral += 1
        if _pauling_ok(ox_states, enegs, legacy):
            return Result(True)
    if n_neutral == 0:
        return Result(False, "not charge balanced: no SMACT-14 oxidation states are neutral")
    return Result(
        False,
        f"fails Pauling test: none of {n_neutral} charge-neutral oxidation-state assignments "
        "has every cation less electronegative than every anion",
    )


def _neutral_assignments(
    ox_lists: Sequence[tuple[int, ...]], counts: Sequence[int]
) -> Iterator[tuple[int, ...]]:
    """Every oxidation-state tuple with sum(ox * count) == 0 (meet in the middle: the second
    half's charge sums are tabulated, the first half is enumerated)."""
    head_lists, tail_lists = _halves(ox_lists)
    head_counts, tail_counts = counts[: len(head_lists)], counts[len(head_lists) :]
    table: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for tail in itertools.product(*tail_lists):
        table[sum(o * c for o, c in zip(tail, tail_counts, strict=True))].append(tail)
    for head in itertools.product(*head_lists):
        charge = sum(o * c for o, c in zip(head, head_counts, strict=True))
        for tail in table.get(-charge, ()):
            yield head + tail


def _halves(ox_lists: Sequence[tuple[int, ...]]) -> tuple[Sequence, Sequence]:
    """The per-element oxidation-state lists split into two halves (first half the shorter)."""
    half = len(ox_lists) // 2
    return ox_lists[:half], ox_lists[half:]


def _pauling_ok(ox_states: Sequence[int], enegs: Sequence[float | None], legacy: bool) -> bool:
    """Pauling test: no cation at least as electronegative as an anion (see module doc)."""
    if not legacy:
        from smact.screening import pauling_test

        return bool(pauling_test(ox_states, enegs))
    pairs = itertools.combinations(zip(ox_states, enegs, strict=True), 2)
    for (ox1, e1), (ox2, e2) in pairs:
        if (ox1 > 0 and ox2 < 0) or (ox1 < 0 and ox2 > 0):
            if e1 is None or e2 is None:
                return True  # SMACT 2.2.1 raised TypeError here; CDVAE counted it as passing
            if (ox1 > 0 and e1 >= e2) or (ox1 < 0 and e1 <= e2):
                return False
        elif e1 is None or e2 is None:
            return False
    return True
