"""Named block layout of the structure-level vector R (docs/method.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BLOCK_ORDER = ("ead_max", "ead_min", "d_min", "composition", "n_atoms", "lattice")


@dataclass(frozen=True)
class Layout:
    """Sizes of the blocks of R, in ``BLOCK_ORDER``.

    R = [EAD_max (F) | EAD_min (F) | d_min (1) | composition (V) | N/N_max (1) | a b c α β γ (6)]
    """

    n_ead: int
    n_elements: int

    @property
    def sizes(self) -> dict[str, int]:
        return {
            "ead_max": self.n_ead,
            "ead_min": self.n_ead,
            "d_min": 1,
            "composition": self.n_elements,
            "n_atoms": 1,
            "lattice": 6,
        }

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name in BLOCK_ORDER:
            out[name] = slice(start, start + self.sizes[name])
            start += self.sizes[name]
        return out

    @property
    def dim(self) -> int:
        return sum(self.sizes.values())

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(BLOCK_ORDER), "sizes": [self.sizes[n] for n in BLOCK_ORDER]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        sizes = dict(zip(d["names"], d["sizes"], strict=True))
        if tuple(d["names"]) != BLOCK_ORDER or sizes["ead_max"] != sizes["ead_min"]:
            raise ValueError(f"unsupported block layout {d}")
        return cls(n_ead=sizes["ead_max"], n_elements=sizes["composition"])
