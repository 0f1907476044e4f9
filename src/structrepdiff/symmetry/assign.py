"""Give each sample a space group and Wyckoff pattern before its structure is sampled.

Generation draws (group, pattern) from the prior for each sampled composition, so the groups
of many samples follow the prior's distribution. Structure prediction (formulas given) ranks
instead: the j-th sample of a formula takes the prior's j-th most likely pair (cycling), so
k samples are k different candidates. A user-given group keeps that group for every sample
and takes its pattern from the prior. A composition that no proposal holds gets a one-line
reason instead of a pair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from structrepdiff.symmetry.prior import Pattern

Choice = tuple[int, Pattern] | str


def formula_of(numbers) -> str:
    """ "Li7O3", "SrTiO3" for the atoms ``numbers`` (counts as given, not reduced)."""
    import re

    from pymatgen.core import Composition, Element

    counts = Counter(int(z) for z in numbers)
    text = Composition({Element.from_Z(z): n for z, n in counts.items()}).formula
    return re.sub(r"(?<=[A-Za-z])1(?![0-9])", "", text.replace(" ", ""))


def numbers_of_rows(rep, rows: np.ndarray) -> list[np.ndarray]:
    """Atomic numbers (N,) of each R row's composition and N blocks (n, D) in R units."""
    comp = np.asarray(rows)[:, rep.layout.slices["composition"]]
    n = np.rint(np.asarray(rows)[:, rep.layout.slices["n_atoms"]][:, 0] * rep.n_max).astype(int)
    counts = np.rint(comp * n[:, None]).astype(int)
    zs = np.asarray(rep.atomic_numbers)
    return [np.repeat(zs, c) for c in counts]


def no_group_reason(numbers, sg: int | None = None) -> str:
    """The one line for a composition no proposal holds."""
    f, n = formula_of(numbers), len(numbers)
    if sg is None:
        return f"no space group of the training prior holds {f} with N = {n}"
    return f"space group {sg} cannot hold {f} with N = {n} (no Wyckoff pattern fits)"


def assign_groups(prior, compositions: Sequence, mode: str = "sample", seed: int = 0,
                  space_group: int | None = None) -> list[Choice]:  # fmt: skip
    """(group, pattern) or a reason for each composition (atomic numbers) in order; ``mode``
    "sample" draws from the prior (seeded), "rank" takes the j-th most likely pair for the
    j-th repeat of a composition. ``space_group`` fixes the group (1 = P1)."""
    if mode not in ("sample", "rank"):
        raise ValueError(f"mode must be 'sample' or 'rank', got {mode!r}")
    rng = np.random.default_rng(seed)
    seen: Counter = Counter()
    out: list[Choice] = []
    for numbers in compositions:
        key = tuple(sorted(int(z) for z in numbers))
        if space_group is None:
            dist = [(p, (sg, pat)) for p, sg, pat in prior.distribution(numbers)]
        else:
            dist = [(q, (space_group, pat)) for q, pat in prior.patterns(numbers, space_group)]
        if not dist:
            out.append(no_group_reason(numbers, space_group))
            continue
        if mode == "rank":
            out.append(dist[seen[key] % len(dist)][1])
        else:
            p = np.array([d[0] for d in dist])
            out.append(dist[int(rng.choice(len(dist), p=p / p.sum()))][1])
        seen[key] += 1
    return out


def choices_to_json(choices: Sequence[Choice]) -> list:
    """JSON-safe: [group, [[Z, letter], ...]] or the reason string."""
    return [c if isinstance(c, str) else [c[0], [list(x) for x in c[1]]] for c in choices]


def choices_from_json(data: Sequence) -> list[Choice]:
    return [c if isinstance(c, str) else (int(c[0]), tuple((int(z), str(x)) for z, x in c[1]))
            for c in data]  # fmt: skip
