"""Evaluation metrics on crystals from any model, following the CDVAE protocol exactly.

Pure functions; per-crystal functions never raise and return a value with a reason when
something failed. This package imports no model code (only pymatgen, matminer, smact, numpy,
scipy); matminer is imported on first use of a fingerprint.
"""

import sys
import types

from structrepdiff.evaluate.cdvae_constants import (
    COMP_SCALER_MEANS,
    COMP_SCALER_STDS,
    COV_CUTOFFS_CDVAE,
    COV_CUTOFFS_PAPER,
    CovCutoffs,
)
from structrepdiff.evaluate.coverage import (
    COV_CUTOFF_SETS,
    cov_cutoffs,
    coverage,
    nearest_reference_distances,
)
from structrepdiff.evaluate.crystal import CrystalEval, evaluate_arrays, evaluate_crystal
from structrepdiff.evaluate.fingerprints import (
    COMP_FP_DIM,
    STRUCT_FP_DIM,
    composition_fingerprint,
    composition_fingerprint_raw,
    fingerprint_diversity,
    standardize_composition_fingerprint,
    structure_fingerprint,
)
from structrepdiff.evaluate.novelty import novelty, uniqueness
from structrepdiff.evaluate.properties import (
    N_PROPERTY_SAMPLES,
    ValidSample,
    property_emd,
    sample_valid,
)
from structrepdiff.evaluate.reconstruction import (
    RECON_MATCHER_KWARGS,
    MatchResult,
    reconstruction_match,
    reconstruction_matcher,
    reconstruction_metrics,
)
from structrepdiff.evaluate.result import Result, count_reasons
from structrepdiff.evaluate.structures import (
    CompositionLike,
    as_composition,
    build_structure,
    density,
    n_elements,
)
from structrepdiff.evaluate.symmetry import space_group, space_group_stats
from structrepdiff.evaluate.validity import composition_validity, structure_validity

__all__ = [
    "COMP_FP_DIM",
    "COMP_SCALER_MEANS",
    "COMP_SCALER_STDS",
    "COV_CUTOFFS_CDVAE",
    "COV_CUTOFFS_PAPER",
    "COV_CUTOFF_SETS",
    "N_PROPERTY_SAMPLES",
    "RECON_MATCHER_KWARGS",
    "STRUCT_FP_DIM",
    "CompositionLike",
    "CovCutoffs",
    "CrystalEval",
    "MatchResult",
    "Result",
    "ValidSample",
    "as_composition",
    "build_structure",
    "composition_fingerprint",
    "composition_fingerprint_raw",
    "composition_validity",
    "count_reasons",
    "cov_cutoffs",
    "coverage",
    "density",
    "evaluate_arrays",
    "evaluate_crystal",
    "fingerprint_diversity",
    "n_elements",
    "nearest_reference_distances",
    "novelty",
    "property_emd",
    "reconstruction_match",
    "reconstruction_matcher",
    "reconstruction_metrics",
    "sample_valid",
    "space_group",
    "space_group_stats",
    "standardize_composition_fingerprint",
    "structure_fingerprint",
    "structure_validity",
    "uniqueness",
]


class _CallablePackage(types.ModuleType):
    """``structrepdiff.evaluate(structures, dataset=...)`` calls `evaluate_structures`, while
    ``structrepdiff.evaluate`` stays the package of metric functions."""

    def __call__(self, structures, dataset: str, split: str = "test", **kwargs):
        from structrepdiff.evaluate.run import evaluate_structures

        return evaluate_structures(structures, dataset, split, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
