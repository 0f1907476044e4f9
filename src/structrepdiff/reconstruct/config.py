"""Settings of the reconstruction (docs/method.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ReconstructConfig:
    """Basin hopping around Adam on Cartesian positions.

    Attributes:
        trials: independent random starts per crystal (paper: 6).
        hops: basin-hopping hops per trial (paper: 7); hop 0 starts from the trial's start.
        steps: Adam steps per hop at most (paper: 300).
        lr_start, lr_end: Adam step size in Å, decayed geometrically within each hop.
        hop_size: a hop moves every coordinate of the trial's best positions by U[-h, h] Å.
        swap_prob: chance that a hop swaps two atoms of different species instead.
        threshold: a crystal is converged, and stops, once its loss falls below this.
        d_min_weight: weight of the relative d_min error in the loss.
        overlap_weight: weight of the mean over atoms of max(0, t_d - nearest_i) / t_d, a
            hard-sphere term that pushes every too-close atom apart (0 at the true crystal).
        patience, plateau_tol, plateau_floor: a hop stops once its best loss, still above
            ``plateau_floor``, has not fallen by a fraction ``plateau_tol`` within
            ``patience`` steps (0: never; it runs all ``steps``). Real crystals end near
            ``threshold`` and are never stopped below the floor; generated vectors that no
            crystal realises plateau far above it (BENCHMARKS.md, "Early stop by plateau").
        skin: neighbour-list skin in Å; the list is rebuilt when an atom moved skin/2.
        dtype: "float32" or "float64".
        seed: base seed; each crystal draws from its own generator seeded by (seed, id).
    """

    trials: int = 6
    hops: int = 7
    steps: int = 300
    lr_start: float = 0.1
    lr_end: float = 0.005
    hop_size: float = 1.0
    swap_prob: float = 0.0
    threshold: float = 1e-3
    d_min_weight: float = 0.1
    overlap_weight: float = 0.0
    patience: int = 50
    plateau_tol: float = 0.01
    plateau_floor: float = 0.1
    skin: float = 0.5
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("trials", "hops", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0.0 <= self.swap_prob <= 1.0:
            raise ValueError("swap_prob must be in [0, 1]")
        if not (self.lr_start > 0 and self.lr_end > 0 and self.hop_size >= 0 and self.skin > 0):
            raise ValueError("learning rates and skin must be positive, hop_size >= 0")
        if not self.threshold >= 0:
            raise ValueError(f"threshold must be >= 0 (a loss), got {self.threshold}")
        if self.patience < 0 or not 0.0 <= self.plateau_tol < 1.0 or self.plateau_floor < 0:
            raise ValueError("`patience` and `plateau_floor` must be >= 0, `plateau_tol` in [0, 1)")
        if self.d_min_weight < 0 or self.overlap_weight < 0:
            raise ValueError("d_min_weight and overlap_weight must be >= 0")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The measured best budget with template starts (BENCHMARKS.md, Table 1 and Table 2 runs):
# 4 template starts × 1 hop × ≤ 300 Adam steps, about 1–5 s per crystal on one CPU core.
TEMPLATE_BUDGET = ReconstructConfig(trials=4, hops=1, steps=300)


@dataclass(frozen=True)
class SymmetricConfig(ReconstructConfig):
    """`ReconstructConfig` plus the settings of reconstruction inside a group.

    Attributes:
        lattice_weight: weight of the lattice term (pull toward the target's lattice block).
        random_starts: random points of the group and pattern drawn per crystal as
            candidate starts (ranked with the given starts by their loss after the lattice
            prefit; the best ``trials`` are descended).
        prefit_steps: Adam steps fitting each start's lattice to the target's lattice block
            (lattice term only) before the descent.
        min_distance: a result with two atoms closer than this (Å; CDVAE's validity
            threshold) ranks after every result without, whatever its loss: orbits that
            collapse onto each other fit a noisy target well but are no crystal.
    """

    trials: int = 4
    hops: int = 1
    lattice_weight: float = 1.0
    random_starts: int = 32
    prefit_steps: int = 50
    min_distance: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.lattice_weight, self.random_starts, self.prefit_steps,
               self.min_distance) < 0:  # fmt: skip
            raise ValueError("lattice_weight, random_starts, prefit_steps and min_distance "
                             "must be >= 0")  # fmt: skip


# Defaults of a reconstruction run (`ReconstructJob`): crystals optimised together, device.
JOB_BATCH_SIZE = 8
JOB_DEVICE = "cpu"
