"""EAD descriptor settings and named presets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

NEIGHBOR_WEIGHTS = ("atomic_number", "ones")


def _grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    """start, start+step, ... < stop, rounded to 10 decimals (0.2*3 -> 0.6, not 0.6000000001)."""
    n = math.floor((stop - start) / step + 1e-9)
    return tuple(round(start + k * step, 10) for k in range(n + 1) if start + k * step < stop)


@dataclass(frozen=True)
class EADConfig:
    """Embedded Atom Density settings (docs/method.md).

    Attributes:
        L: highest angular channel (0..3).
        etas: Gaussian widths η in Å⁻².
        rs: Gaussian centres Rs in Å.
        cutoff: R_c in Å; every periodic image within it is summed.
        weights: neighbour weight: ``atomic_number`` (Z_j, the paper) or ``ones``.
        scale: factor applied to ρ (the original code divided by 1e6).
    """

    L: int = 1
    etas: tuple[float, ...] = (1.0, 20.0, 90.0)
    rs: tuple[float, ...] = field(default_factory=lambda: _grid(0.0, 10.0, 0.2))
    cutoff: float = 20.0
    weights: str = "atomic_number"
    scale: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 <= self.L <= 3:
            raise ValueError(f"L must be in 0..3, got {self.L}")
        if not self.etas or not self.rs:
            raise ValueError("etas and rs must be non-empty")
        if self.cutoff <= 0:
            raise ValueError(f"cutoff must be positive, got {self.cutoff}")
        if self.weights not in NEIGHBOR_WEIGHTS:
            raise ValueError(f"weights must be one of {NEIGHBOR_WEIGHTS}, got {self.weights!r}")
        object.__setattr__(self, "etas", tuple(float(x) for x in self.etas))
        object.__setattr__(self, "rs", tuple(float(x) for x in self.rs))

    @property
    def n_features(self) -> int:
        """Per-atom feature count (L+1)·|η|·|Rs|."""
        return (self.L + 1) * len(self.etas) * len(self.rs)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["etas"], d["rs"] = list(self.etas), list(self.rs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EADConfig:
        return cls(**{**d, "etas": tuple(d["etas"]), "rs": tuple(d["rs"])})


PRESETS: dict[str, EADConfig] = {
    # The paper: L = 1, η = 1, 20, 90 Å⁻², Rs = 0.0..9.8 Å step 0.2, R_c = 20 Å -> 300 per atom.
    "paper": EADConfig(),
    # The first trial's cheaper preset (BENCHMARKS.md): Rs = 0.0..5.8 Å, R_c = 6 Å -> 180 per atom.
    "small": EADConfig(rs=_grid(0.0, 6.0, 0.2), cutoff=6.0),
}


def get_preset(name: str) -> EADConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown EAD preset {name!r}; known: {', '.join(PRESETS)}") from None
