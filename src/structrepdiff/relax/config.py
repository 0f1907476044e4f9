"""Settings of a relaxation (issue #13): one frozen dataclass, the source of every default."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

POTENTIALS = ("chgnet", "sevennet")
DRIVERS = ("batched", "ase")


@dataclass(frozen=True)
class RelaxConfig:
    """FIRE on positions and cell (ASE's ``FrechetCellFilter``) with a universal potential.

    Attributes:
        potential: "chgnet" (CHGNet 0.3.0 weights shipped in the wheel) or "sevennet"
            (SevenNet-0, energies mapped to the MP2020-corrected scale).
        fmax: converged once every force (and the filter's stress term) is below this, eV/Å.
        max_steps: FIRE steps at most (150: a quarter fewer steps than 300 at the same S.U.N.
            on 200 generated MP-20 crystals, BENCHMARKS.md issue 28).
        min_distance: a crystal with two atoms closer than this (Å) is reported, not relaxed.
        energy_floor: a relaxed energy below this (eV/atom) marks divergence, not a result.
        max_volume_ratio: a relaxed volume more than this many times larger, or smaller, than
            the input's marks an exploding (or collapsing) cell.
        device: torch device of the potential ("cpu" or "cuda").
        symmetric_steps: FIRE steps of a first stage that keeps the space group found at
            ``symprec`` (ASE's ``FixSymmetry`` on positions and cell); the free stage then
            has the rest of ``max_steps`` (none when this is ``max_steps`` or more). 0: one
            free stage only. 100 at 0.1 Å measured best on 200 generated MP-20 crystals:
            P1 after relaxation 22 → 7 %, the same S.U.N. within noise (BENCHMARKS.md).
        symprec: tolerance (Å) of the symmetry kept by the first stage; the crystal is first
            made exactly symmetric at it (ASE's ``refine_symmetry``).
        batch_size: crystals relaxed together, one potential call per FIRE step for all of
            them (``driver`` "batched"); a crystal leaves when done and the next one joins.
        driver: "batched" (`relax.batched`, many crystals per step) or "ase" (ASE's FIRE and
            FrechetCellFilter one crystal at a time, the reference it is tested against).
    """

    potential: str = "chgnet"
    fmax: float = 0.1
    max_steps: int = 150
    min_distance: float = 0.5
    energy_floor: float = -20.0
    max_volume_ratio: float = 10.0
    device: str = "cpu"
    symmetric_steps: int = 100
    symprec: float = 0.1
    batch_size: int = 16
    driver: str = "batched"

    def __post_init__(self) -> None:
        if self.potential not in POTENTIALS:
            raise ValueError(f"potential must be one of {', '.join(POTENTIALS)}, "
                             f"not {self.potential!r}")  # fmt: skip
        if self.fmax <= 0 or self.max_steps < 0 or self.min_distance < 0:
            raise ValueError("fmax must be positive, max_steps and min_distance non-negative")
        if self.symmetric_steps < 0 or self.symprec <= 0:
            raise ValueError("symmetric_steps must be non-negative and symprec positive")
        if self.driver not in DRIVERS:
            raise ValueError(f"driver must be one of {', '.join(DRIVERS)}, not {self.driver!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.max_volume_ratio <= 1:
            raise ValueError("max_volume_ratio must be above 1")

    @property
    def sym_steps(self) -> int:
        """Steps of the symmetric stage: ``symmetric_steps``, at most ``max_steps`` (so single
        points, ``max_steps`` 0, never refine the crystal)."""
        return min(self.symmetric_steps, self.max_steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
