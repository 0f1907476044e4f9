"""CDVAE's structure and composition fingerprints (matminer), and their mean pairwise distance.

Structure: matminer ``CrystalNNFingerprint.from_preset("ops")`` of every site, averaged over
sites (61 numbers). Composition: matminer ``ElementProperty.from_preset("magpie")`` (132
numbers), standardised with CDVAE's fixed means and standard deviations; entries that are NaN
after standardising become 0 (CDVAE's ``StandardScaler(replace_nan_token=0.)``).

CDVAE ran matminer 0.7.x, which never imputed missing elemental data; matminer >= 0.9 imputes
by default, so we pass ``impute_nan=False`` to keep NaN -> 0 exactly as CDVAE (the Magpie
tables of 0.7.3 and 0.10.1 are identical). matminer is imported lazily: it takes seconds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from pymatgen.core import Structure
from scipy.spatial.distance import pdist

from structrepdiff.evaluate.cdvae_constants import COMP_SCALER_MEANS, COMP_SCALER_STDS
from structrepdiff.evaluate.result import Result, exception_reason, fail
from structrepdiff.evaluate.structures import CompositionLike, as_composition
from structrepdiff.evaluate.validity import STRUCT_MIN_VOLUME

STRUCT_FP_DIM = 61
COMP_FP_DIM = 132


@lru_cache(maxsize=1)
def _crystalnn_featurizer() -> Any:
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops")


@lru_cache(maxsize=1)
def _magpie_featurizer() -> Any:
    from matminer.featurizers.composition.composite import ElementProperty

    return ElementProperty.from_preset("magpie", impute_nan=False)


def structure_fingerprint(structure: Structure | None) -> Result[np.ndarray]:
    """Mean over sites of the CrystalNN "ops" site fingerprint: (61,) float64, or a reason.

    As CDVAE, any error while featurising a site fails the whole crystal. Deviation: a cell
    below 0.1 Å³ is not featurised (CrystalNN would enumerate an enormous neighbour shell);
    CDVAE attempted it.
    """
    if structure is None:
        return fail("no structure")
    if len(structure) == 0:
        return fail("no atoms")
    if not structure.volume >= STRUCT_MIN_VOLUME:
        return fail(f"not fingerprinted: volume {structure.volume:.3g} Å³ < {STRUCT_MIN_VOLUME}")
    featurizer = _crystalnn_featurizer()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sites = [featurizer.featurize(structure, i) for i in range(len(structure))]
        fp = np.asarray(sites, dtype=float).mean(axis=0)
    except Exception as exc:  # CrystalNN / order parameters raise many types
        return fail(exception_reason("structure fingerprint failed", exc))
    if not np.isfinite(fp).all():
        return fail("structure fingerprint failed: non-finite values")
    return Result(fp)


def composition_fingerprint_raw(composition: CompositionLike) -> Result[np.ndarray]:
    """Unscaled Magpie ElementProperty features: (132,) float64 (NaN where data is missing)."""
    comp = as_composition(composition)
    if not comp.ok:
        return fail(comp.reason or "unreadable composition")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = _magpie_featurizer().featurize(comp.value)
        return Result(np.asarray(raw, dtype=float))
    except Exception as exc:  # unknown elements, empty compositions
        return fail(exception_reason("composition fingerprint failed", exc))


def standardize_composition_fingerprint(raw: np.ndarray | Sequence[float]) -> np.ndarray:
    """CDVAE's ``CompScaler.transform``: (x - mean) / std with CDVAE's fixed constants, then
    NaN -> 0. raw: (132,) or (M, 132); returns the same shape, float64."""
    x = np.asarray(raw, dtype=float)
    z = (x - np.asarray(COMP_SCALER_MEANS)) / np.asarray(COMP_SCALER_STDS)
    return np.where(np.isnan(z), 0.0, z)


def composition_fingerprint(composition: CompositionLike) -> Result[np.ndarray]:
    """Standardised Magpie fingerprint as used for COV and composition diversity: (132,)."""
    raw = composition_fingerprint_raw(composition)
    if not raw.ok:
        return raw
    return Result(standardize_composition_fingerprint(raw.value))


def fingerprint_diversity(fps: Sequence[np.ndarray] | np.ndarray) -> float:
    """Mean pairwise Euclidean distance (CDVAE ``get_fp_pdist``; struct_div / comp_div).

    fps: (M, D) fingerprints (standardised ones for compositions). NaN when M < 2.
    """
    x = np.asarray(fps, dtype=float)
    if x.ndim != 2 or len(x) < 2:
        return float("nan")
    return float(pdist(x).mean())
