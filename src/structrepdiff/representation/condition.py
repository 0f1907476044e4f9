"""Known parts of R for conditional sampling: fix composition and atom count, sample the rest.

`composition_condition` turns formulas (e.g. "SrTiO3", "Ba2Zr2O6") into the composition and
N/N_max features of R; `conditions_from_rows` takes them from existing R rows (e.g. the
training features, for structure generation at training compositions). Both return
``(mask (D,) bool, values (n, D))`` in raw R units, as `sample_vectors(known=...)` expects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from structrepdiff.representation.encode import Representation

CONDITIONED_BLOCKS = ("composition", "n_atoms")


def condition_mask(rep: Representation) -> np.ndarray:
    """(D,) bool: True on the composition and N/N_max features."""
    mask = np.zeros(rep.layout.dim, dtype=bool)
    for name in CONDITIONED_BLOCKS:
        mask[rep.layout.slices[name]] = True
    return mask


def composition_row(rep: Representation, formula: str) -> np.ndarray:
    """(D,) R values (zeros outside the conditioned blocks) for one formula, taken literally:
    "SrTiO3" is 5 atoms, "Sr2Ti2O6" 10. Raises ValueError with the reason."""
    from pymatgen.core import Composition

    try:
        comp = Composition(formula)
    except Exception as exc:  # pymatgen raises several types for bad formulas
        raise ValueError(f"cannot parse formula {formula!r}: {exc}") from None
    n = comp.num_atoms
    if n < 1 or abs(n - round(n)) > 1e-8 or any(abs(v - round(v)) > 1e-8 for v in comp.values()):
        raise ValueError(f"formula {formula!r} must have whole, positive atom counts")
    if round(n) > rep.n_max:
        raise ValueError(f"formula {formula!r} has {round(n)} atoms, more than N_max = "
                         f"{rep.n_max} of this model")  # fmt: skip
    row = np.zeros(rep.layout.dim)
    comp_block = row[rep.layout.slices["composition"]]
    for el, count in comp.items():
        k = rep.element_index(el.Z)
        if k is None:
            raise ValueError(f"formula {formula!r}: {el.symbol} is not in the model's elements")
        comp_block[k] = round(count) / round(n)
    row[rep.layout.slices["n_atoms"]] = round(n) / rep.n_max
    return row


def composition_condition(rep: Representation, formulas: Sequence[str], num: int
                          ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``num`` conditions cycling through ``formulas`` in order."""
    if not formulas:
        raise ValueError("give at least one formula")
    rows = np.stack([composition_row(rep, f) for f in formulas])
    return condition_mask(rep), rows[np.arange(num) % len(rows)]


def conditions_from_rows(rep: Representation, R: np.ndarray, num: int, seed: int
                         ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``num`` conditions drawn (seeded, without replacement while rows last) from R rows
    (n, D) of the same representation, e.g. the training features."""
    R = np.atleast_2d(np.asarray(R, dtype=np.float64))
    if R.shape[1] != rep.layout.dim or len(R) == 0:
        raise ValueError(f"need R rows of length {rep.layout.dim}, got shape {R.shape}")
    rng = np.random.default_rng(seed)
    picks = np.concatenate([rng.permutation(len(R)) for _ in range(-(-num // len(R)))])[:num]
    return condition_mask(rep), R[picks]


def condition_rows_from_counts(rep: Representation, counts: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Conditions for (n, V) integer element counts over ``rep``'s vocabulary (e.g. samples of
    a composition model): fractions count/N and N/N_max, zeros elsewhere."""
    counts = np.atleast_2d(np.asarray(counts))
    if counts.shape[1] != len(rep.atomic_numbers):
        raise ValueError(f"counts have {counts.shape[1]} elements, the representation "
                         f"{len(rep.atomic_numbers)}")  # fmt: skip
    n = counts.sum(1)
    if (n < 1).any() or (n > rep.n_max).any() or (counts < 0).any():
        raise ValueError(f"every count vector must be non-negative and sum to 1..{rep.n_max}")
    rows = np.zeros((len(counts), rep.layout.dim))
    rows[:, rep.layout.slices["composition"]] = counts / n[:, None]
    rows[:, rep.layout.slices["n_atoms"]] = (n / rep.n_max)[:, None]
    return condition_mask(rep), rows


GROUP_DIM = 231 + 8  # one-hot space group (0 = unknown, 1–230) + crystal system (0 = unknown)


def group_features(groups) -> np.ndarray:
    """(n, GROUP_DIM) condition columns of space groups ``groups`` (n,) int, 0 = unknown:
    the one-hot group followed by the one-hot crystal system (shared by the groups of a
    system). Raises ValueError naming a group outside 0–230."""
    from structrepdiff.symmetry.groups import SYSTEMS, crystal_system

    groups = np.asarray(groups, dtype=int).reshape(-1)
    bad = groups[(groups < 0) | (groups > 230)]
    if len(bad):
        raise ValueError(f"space group {int(bad[0])} is not in 1–230 (0 means unknown)")
    out = np.zeros((len(groups), GROUP_DIM), dtype=np.float32)
    out[np.arange(len(groups)), groups] = 1.0
    system = np.array([0 if g == 0 else 1 + SYSTEMS.index(crystal_system(int(g)))
                       for g in groups], dtype=int)  # fmt: skip
    out[np.arange(len(groups)), 231 + system] = 1.0
    return out
