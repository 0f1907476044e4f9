"""Per-feature scaler mapping R to the diffusion space and back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCALER_KINDS = ("standard", "blockwise")


@dataclass(frozen=True)
class Scaler:
    """z = (R - mean) / std per feature; constant features (std < min_std) get std = 1.

    ``standard``: mean and std of each feature. ``blockwise``: the same, except that each block
    given to `fit` as ``minmax_blocks`` (the composition block) is mapped to [-1, 1] with one
    range shared by the whole block, so an absent element is -1 for every element instead of
    a per-feature z-score that sends a rare element to +20 or more.
    Unbounded: samples mapped back with ``inverse`` are not clamped to any range.
    """

    mean: np.ndarray
    std: np.ndarray
    kind: str = "standard"

    @classmethod
    def fit(cls, R: np.ndarray, min_std: float = 1e-12, minmax_blocks: Sequence[slice] = ()
            ) -> Scaler:  # fmt: skip
        """Fit on the rows of R (n, D); non-finite values are an error. Columns in each slice
        of ``minmax_blocks`` share one affine map of the block's [min, max] onto [-1, 1]."""
        R = np.asarray(R, dtype=np.float64)
        if R.ndim != 2 or R.shape[0] < 1:
            raise ValueError(f"need a non-empty (n, D) matrix, got shape {R.shape}")
        if not np.isfinite(R).all():
            raise ValueError("cannot fit a scaler on non-finite values")
        mean, std = R.mean(axis=0), R.std(axis=0)
        std = np.where(std < min_std, 1.0, std)
        for sl in minmax_blocks:
            lo, hi = float(R[:, sl].min()), float(R[:, sl].max())
            mean[sl] = (hi + lo) / 2
            std[sl] = (hi - lo) / 2 if hi - lo >= 2 * min_std else 1.0
        return cls(mean=mean, std=std, kind="blockwise" if minmax_blocks else "standard")

    def transform(self, R):
        """R (..., D) -> scaled; works on numpy arrays and torch tensors (float result)."""
        R = _as_float(R)
        return (R - _like(self.mean, R)) / _like(self.std, R)

    def inverse(self, Z):
        """Scaled (..., D) -> R."""
        Z = _as_float(Z)
        return Z * _like(self.std, Z) + _like(self.mean, Z)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        if d.get("kind") not in SCALER_KINDS:
            raise ValueError(f"unknown scaler kind {d.get('kind')!r}")
        return cls(np.asarray(d["mean"], float), np.asarray(d["std"], float), d["kind"])

    def save(self, path: str | Path) -> None:
        """Write an .npz archive (mean, std, kind) to exactly ``path``."""
        with open(path, "wb") as fh:
            np.savez(fh, mean=self.mean, std=self.std, kind=np.array(self.kind))

    @classmethod
    def load(cls, path: str | Path) -> Scaler:
        with np.load(path, allow_pickle=False) as f:
            return cls.from_dict({"kind": str(f["kind"]), "mean": f["mean"], "std": f["std"]})


def _as_float(x):
    """numpy arrays and tensors with a floating dtype (integers become float64)."""
    if isinstance(x, np.ndarray) or not hasattr(x, "is_floating_point"):
        x = np.asarray(x)
        return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    return x if x.is_floating_point() else x.double()


def _like(values: np.ndarray, ref):
    """``values`` as the same kind of array as ``ref`` (numpy or torch), dtype and device."""
    if isinstance(ref, np.ndarray):
        return values.astype(ref.dtype, copy=False)
    import torch

    return torch.as_tensor(values, dtype=ref.dtype, device=ref.device)
