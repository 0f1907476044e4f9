"""Relaxation of crystals with a universal machine-learned potential (issue #13).

``relax_structure(structure, calculator, config)`` relaxes one crystal in memory;
``run_relax(RelaxJob(...))`` relaxes every crystal that `load_predictions` reads, into a
resumable folder of CIFs, ``relaxed.extxyz`` and ``summary.csv``.
"""

from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.core import RelaxResult, relax_structure
from structrepdiff.relax.potential import load_calculator

__all__ = ["RelaxConfig", "RelaxResult", "load_calculator", "relax_structure"]
