"""Relax one crystal: FIRE on positions and cell, with guards that turn failures into reasons."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.potential import MAX_Z, corrected_energy


@dataclass(frozen=True)
class RelaxResult:
    """Outcome of one relaxation.

    ``structure`` is the relaxed crystal, or None when the crystal was not relaxed or the
    relaxation diverged (then ``reason`` says why). Energies are eV/atom on the MP2020 scale;
    ``rmsd`` (Å) is the root-mean-square displacement of the atoms between input and relaxed
    crystal, fractional displacements wrapped to the nearest image and expressed in the
    relaxed cell; ``volume_ratio`` is relaxed / input volume. With a symmetry-keeping first
    stage (``RelaxConfig.symmetric_steps``), the crystal is first made exactly symmetric
    (``energy_before`` is then the refined crystal's), ``symmetric`` is the crystal after the
    stage and ``symmetric_steps`` its FIRE steps.
    """

    status: str  # "converged", "not_converged", "diverged", "rejected" or "failed"
    structure: Structure | None
    energy_before: float | None = None
    energy_after: float | None = None
    steps: int = 0
    rmsd: float | None = None
    volume_ratio: float | None = None
    reason: str = ""
    symmetric: Structure | None = None
    symmetric_steps: int = 0


def precheck(structure: Structure, config: RelaxConfig) -> str:
    """Why ``structure`` cannot be relaxed with ``config`` ("" when it can)."""
    from structrepdiff.data.io import nonfinite_reason

    if bad := nonfinite_reason(structure):
        return bad
    bad = sorted({sp.symbol for sp in structure.species if MAX_Z[config.potential] < sp.Z})
    if bad:
        return f"element {', '.join(bad)} outside {config.potential}'s range"
    if structure.volume < 1e-3:
        return f"degenerate cell (volume {structure.volume:.2g} Å³)"
    if len(structure) > 1:
        d = structure.distance_matrix + np.eye(len(structure)) * 1e9
        if d.min() < config.min_distance:
            return f"atoms {d.min():.2f} Å apart (< {config.min_distance} Å)"
    return ""


def displacement_rmsd(before: Structure, after: Structure) -> float:
    """RMS displacement (Å) between two orderings of the same atoms, fractional differences
    wrapped to the nearest image, in ``after``'s cell."""
    df = after.frac_coords - before.frac_coords
    df -= np.round(df)
    cart = df @ after.lattice.matrix
    return float(np.sqrt((cart**2).sum(axis=1).mean()))


def _divergence(result_energy: float, before: Structure, after: Structure,
                config: RelaxConfig) -> str:  # fmt: skip
    if not np.isfinite(result_energy) or result_energy < config.energy_floor:
        return f"diverged: energy {result_energy:.3g} eV/atom below {config.energy_floor}"
    ratio = after.volume / before.volume
    if not np.isfinite(ratio) or not 1 / config.max_volume_ratio < ratio < config.max_volume_ratio:
        return f"diverged: volume changed {ratio:.3g}×"
    return ""


def relax_structure(structure: Structure, calculator, config: RelaxConfig | None = None
                    ) -> RelaxResult:  # fmt: skip
    """Relax ``structure`` with an ASE ``calculator`` (see `load_calculator`); never raises
    for a bad crystal, whose result carries the reason instead."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    config = config or RelaxConfig()
    why = precheck(structure, config)
    if why:
        return RelaxResult("rejected", None, reason=why)
    n = len(structure)
    atoms = AseAtomsAdaptor.get_atoms(structure)
    notes = _refine(atoms, config)
    atoms.calc = calculator
    try:
        e0 = corrected_energy(config.potential, structure, float(atoms.get_potential_energy())) / n
        sym, sym_steps = _symmetric_stage(atoms, config)
        opt = FIRE(FrechetCellFilter(atoms), logfile=None)
        with contextlib.redirect_stdout(io.StringIO()):
            converged = bool(opt.run(fmax=config.fmax, steps=config.max_steps - sym_steps))
        relaxed = AseAtomsAdaptor.get_structure(atoms)
        e1 = corrected_energy(config.potential, relaxed, float(atoms.get_potential_energy())) / n
    except Exception as exc:  # the potential is third-party code: any failure is a reason
        return RelaxResult("failed", None, reason=f"{type(exc).__name__}: {exc}")
    steps = int(opt.get_number_of_steps()) + sym_steps
    div = _divergence(e1, structure, relaxed, config)
    if div:
        return RelaxResult("diverged", None, e0, e1, steps, reason=div)
    return RelaxResult("converged" if converged else "not_converged", relaxed, e0, e1, steps,
                       displacement_rmsd(structure, relaxed), relaxed.volume / structure.volume,
                       notes, symmetric=sym, symmetric_steps=sym_steps)  # fmt: skip


def _refine(atoms, config: RelaxConfig) -> str:
    """Make ``atoms`` exactly symmetric at ``config.symprec`` before a symmetric stage (ASE's
    ``refine_symmetry``); "" or why it could not."""
    if not config.sym_steps:
        return ""
    from structrepdiff.relax.symmetrize import refine_and_ops

    return refine_and_ops(atoms, config.symprec)[1]


def _symmetric_stage(atoms, config: RelaxConfig) -> tuple[Structure | None, int]:
    """Relax ``atoms`` in place for up to ``config.sym_steps`` FIRE steps keeping the
    space group found at ``config.symprec`` (ASE's FixSymmetry on positions and cell); the
    constraint is removed afterwards. Returns (the crystal after the stage, steps taken)."""
    if not config.sym_steps:
        return None, 0
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms.set_constraint(FixSymmetry(atoms, symprec=config.symprec))
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    with contextlib.redirect_stdout(io.StringIO()):
        opt.run(fmax=config.fmax, steps=config.sym_steps)
    atoms.set_constraint()
    return AseAtomsAdaptor.get_structure(atoms), int(opt.get_number_of_steps())
