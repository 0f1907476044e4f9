"""Relax many crystals at once: batched FIRE on the Fréchet cell filter (`relax.fire`), an
optional symmetry-keeping first stage (`relax.symmetrize`), one potential call per step for
the whole batch (`relax.potential.BatchPotential`).

``relax_batched(items, potential, config)`` keeps up to ``config.batch_size`` crystals in
flight; a crystal leaves as soon as it converges, runs out of steps, diverges or its potential
call fails, and the next one joins. Results come out in finishing order, each with the
per-crystal outcome the per-crystal ASE path (`relax.core.relax_structure`) gives.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

from structrepdiff.relax import fire
from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.core import RelaxResult, _divergence, displacement_rmsd, precheck
from structrepdiff.relax.potential import corrected_energy
from structrepdiff.relax.symmetrize import (
    CrystalOps,
    refine_and_ops,
    stack_ops,
    symmetrize_forces,
    symmetrize_stress,
)


@dataclass
class _Slot:
    """Book-keeping of one crystal in flight (its geometry lives in the batched state)."""

    key: Any
    structure: Structure
    start: Structure
    ops: CrystalOps
    symmetric: bool
    steps: int = 0
    stage_steps: int = 0
    e0: float | None = None
    sym_structure: Structure | None = None
    sym_steps: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    stage_limit: int = 0

    @property
    def n(self) -> int:
        return len(self.structure)

    @property
    def limit(self) -> int:
        return self.stage_limit if self.symmetric else self.stage_limit - self.sym_steps


def _slot(key, structure: Structure, config: RelaxConfig) -> _Slot:
    start, ops, notes = structure, CrystalOps.identity(len(structure)), []
    if config.sym_steps:
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(structure)
        ops, why = refine_and_ops(atoms, config.symprec)
        start = AseAtomsAdaptor.get_structure(atoms) if not why else structure
        notes += [why] if why else []
    symmetric = config.sym_steps > 0
    limit = config.sym_steps if symmetric else config.max_steps
    return _Slot(key, structure, start, ops, symmetric, notes=notes, stage_limit=limit)


def _tensors(slots: list[_Slot]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(positions (N, 3), cells (B, 3, 3), numbers (N,), batch (N,)) of the slots' start."""
    pos = np.concatenate([s.start.cart_coords for s in slots])
    cells = np.stack([s.start.lattice.matrix for s in slots])
    num = np.concatenate([[sp.Z for sp in s.start.species] for s in slots])
    batch = np.repeat(np.arange(len(slots)), [s.n for s in slots])
    f64 = torch.float64
    return (torch.as_tensor(pos, dtype=f64), torch.as_tensor(cells, dtype=f64),
            torch.as_tensor(num), torch.as_tensor(batch))  # fmt: skip


def _cat_states(a: fire.FrechetState | None, b: fire.FrechetState) -> fire.FrechetState:
    if a is None:
        return b
    shift = len(a.n_atoms)
    parts = {k: torch.cat([getattr(a, k), getattr(b, k)]) for k in a.__dataclass_fields__}
    parts["batch"] = torch.cat([a.batch, b.batch + shift])
    return fire.FrechetState(**parts)


def _subset(st: fire.FrechetState, keep: torch.Tensor) -> fire.FrechetState:
    """The crystals where ``keep`` (B,) is set, renumbered."""
    atoms = keep[st.batch]
    new_index = torch.cumsum(keep.long(), 0) - 1
    parts = {k: getattr(st, k)[atoms if k in ("u", "vel_u", "batch") else keep]
             for k in st.__dataclass_fields__}  # fmt: skip
    parts["batch"] = new_index[st.batch[atoms]]
    return fire.FrechetState(**parts)


def _rebase(st: fire.FrechetState, mask: torch.Tensor, positions, cells,
            params: fire.FireParams) -> None:  # fmt: skip
    """Restart FIRE and the filter's reference at the current geometry where ``mask`` (B,)."""
    atoms = mask[st.batch][:, None]
    st.u = torch.where(atoms, positions, st.u)
    st.vel_u = torch.where(atoms, torch.zeros_like(st.vel_u), st.vel_u)
    m3 = mask[:, None, None]
    st.ref_cell = torch.where(m3, cells, st.ref_cell)
    st.ell = torch.where(m3, torch.zeros_like(st.ell), st.ell)
    st.vel_ell = torch.where(m3, torch.zeros_like(st.vel_ell), st.vel_ell)
    st.dt = torch.where(mask, torch.full_like(st.dt, params.dt), st.dt)
    st.a = torch.where(mask, torch.full_like(st.a, params.astart), st.a)
    st.n_up = torch.where(mask, torch.zeros_like(st.n_up), st.n_up)
    st.started = st.started & ~mask


def _structure(slot: _Slot, positions: np.ndarray, cell: np.ndarray) -> Structure:
    return Structure(Lattice(cell), slot.structure.species, positions, coords_are_cartesian=True)


def _health(slot: _Slot, energy: float, forces: torch.Tensor, cell: np.ndarray, reason: str,
            config: RelaxConfig) -> RelaxResult | None:  # fmt: skip
    """A result that takes the crystal out of the batch now (failed or diverged), or None."""
    if reason:
        return RelaxResult("failed", None, slot.e0, reason=reason, steps=slot.steps)
    if not np.isfinite(energy) or not bool(torch.isfinite(forces).all()):
        return RelaxResult("diverged", None, slot.e0, steps=slot.steps,
                           reason="diverged: non-finite energy or forces")  # fmt: skip
    if energy / slot.n < config.energy_floor:
        return RelaxResult("diverged", None, slot.e0, energy / slot.n, slot.steps,
                           reason=f"diverged: energy {energy / slot.n:.3g} eV/atom below "
                                  f"{config.energy_floor}")  # fmt: skip
    ratio = abs(np.linalg.det(cell)) / slot.structure.volume
    if not 1 / config.max_volume_ratio < ratio < config.max_volume_ratio:
        return RelaxResult("diverged", None, slot.e0, energy / slot.n, slot.steps,
                           reason=f"diverged: volume changed {ratio:.3g}×")  # fmt: skip
    return None


def _finish(slot: _Slot, relaxed: Structure, energy: float, converged: bool,
            config: RelaxConfig) -> RelaxResult:  # fmt: skip
    e1 = corrected_energy(config.potential, relaxed, energy) / slot.n
    div = _divergence(e1, slot.structure, relaxed, config)
    if div:
        return RelaxResult("diverged", None, slot.e0, e1, slot.steps, reason=div)
    return RelaxResult("converged" if converged else "not_converged", relaxed, slot.e0, e1,
                       slot.steps, displacement_rmsd(slot.structure, relaxed),
                       relaxed.volume / slot.structure.volume, reason="; ".join(slot.notes),
                       symmetric=slot.sym_structure, symmetric_steps=slot.sym_steps)  # fmt: skip


class _Batch:
    """The crystals in flight: slots, their FIRE state, numbers (N,) and symmetry ops."""

    def __init__(self, params: fire.FireParams) -> None:
        self.params, self.slots = params, []
        self.state: fire.FrechetState | None = None
        self.numbers = torch.zeros(0, dtype=torch.long)
        self._ops = None

    def join(self, new: list[_Slot]) -> None:
        pos, cells, num, batch = _tensors(new)
        self.state = _cat_states(self.state, fire.init_state(pos, cells, batch, self.params))
        self.numbers = torch.cat([self.numbers, num])
        self.slots += new
        self._ops = None

    def keep(self, keep: torch.Tensor) -> None:
        self.numbers = self.numbers[keep[self.state.batch]]
        self.state = _subset(self.state, keep)
        self.slots = [s for s, k in zip(self.slots, keep.tolist(), strict=True) if k]
        self._ops = None

    def ops(self):
        if self._ops is None:
            self._ops = stack_ops([s.ops if s.symmetric else CrystalOps.identity(s.n)
                                   for s in self.slots])  # fmt: skip
        return self._ops

    def invalidate_ops(self) -> None:
        self._ops = None


def relax_batched(items: Iterable[tuple[Any, Structure | None]], potential,
                  config: RelaxConfig | None = None, params: fire.FireParams | None = None
                  ) -> Iterator[tuple[Any, RelaxResult, float]]:  # fmt: skip
    """Relax every (key, structure) of ``items`` with a `BatchPotential`; yields
    (key, RelaxResult, seconds) as each crystal leaves the batch, seconds being its share of
    the batch's wall time (by atoms). A structure of None, or one `precheck` refuses, comes
    back "rejected" at once; no crystal's failure stops the others."""
    config, params = config or RelaxConfig(), params or fire.FireParams()
    queue, batch = iter(items), _Batch(params)
    while True:
        new = []
        while len(batch.slots) + len(new) < config.batch_size:
            item = next(queue, None)
            if item is None:
                break
            key, s = item
            why = "no input crystal" if s is None else precheck(s, config)
            if why:
                yield key, RelaxResult("rejected", None, reason=why), 0.0
                continue
            new.append(_slot(key, s, config))
        if new:
            batch.join(new)
        if not batch.slots:
            return
        yield from _step(batch, potential, config)


def _step(batch: _Batch, potential, config: RelaxConfig) -> Iterator[tuple[Any, RelaxResult,
                                                                              float]]:  # fmt: skip
    """One force call and one FIRE step for the batch; yields the crystals that leave."""
    t0 = time.perf_counter()
    st, slots = batch.state, batch.slots
    positions, cells = fire.geometry(st)
    energy, forces, stress, reasons = potential(positions, cells, batch.numbers, st.batch)
    pos_np, cell_np, e_np = positions.numpy(), cells.numpy(), energy.numpy()
    bounds = np.searchsorted(st.batch.numpy(), np.arange(len(slots) + 1))
    leave: dict[int, RelaxResult] = {}
    for b, s in enumerate(slots):
        if s.steps == 0 and not reasons[b] and np.isfinite(e_np[b]):
            s.e0 = corrected_energy(config.potential, s.structure, float(e_np[b])) / s.n
        bad = _health(s, float(e_np[b]), forces[bounds[b]:bounds[b + 1]], cell_np[b],
                      reasons[b], config)  # fmt: skip
        if bad is not None:
            leave[b] = bad
    forces = torch.nan_to_num(forces)
    stress = torch.nan_to_num(stress)
    f_u, f_ell = _stage_forces(batch, positions, cells, forces, stress, config)
    fmax = fire.max_force(batch.state, f_u, f_ell).tolist()
    for b, s in enumerate(slots):
        if b in leave:
            continue
        converged = fmax[b] < config.fmax
        if converged or s.stage_steps >= s.limit:
            a, z = bounds[b], bounds[b + 1]
            leave[b] = _finish(s, _structure(s, pos_np[a:z], cell_np[b]), float(e_np[b]),
                               converged, config)  # fmt: skip
    stay = torch.tensor([b not in leave for b in range(len(slots))])
    fire.fire_step(batch.state, f_u, f_ell, stay, batch.params)
    seconds = time.perf_counter() - t0
    n_total = float(sum(s.n for s in slots))
    for b, s in enumerate(slots):
        s.seconds += seconds * s.n / n_total
        if b not in leave:  # a leaving crystal's result already counts the steps it took
            s.steps += 1
            s.stage_steps += 1
    for b in sorted(leave):
        yield slots[b].key, leave[b], slots[b].seconds
    if leave:
        batch.keep(stay)


def _stage_forces(batch: _Batch, positions, cells, forces, stress, config: RelaxConfig):
    """Generalised forces (f_u, f_ell); crystals in the symmetric stage feel symmetrised forces
    and stress, and those whose stage ends here (converged in it, or out of its steps) restart
    FIRE from the current geometry with the raw forces, as a new ASE optimiser would."""
    sym = torch.tensor([s.symmetric for s in batch.slots])
    if not bool(sym.any()):
        return fire.filter_forces(batch.state, forces, stress, cells)
    ops = batch.ops()
    fs = symmetrize_forces(forces, cells, batch.state.batch, ops)
    ss = symmetrize_stress(stress, cells, ops)
    f_u, f_ell = fire.filter_forces(batch.state, fs, ss, cells)
    fmax = fire.max_force(batch.state, f_u, f_ell).tolist()
    ends = torch.zeros_like(sym)
    for b, s in enumerate(batch.slots):
        if s.symmetric and (fmax[b] < config.fmax or s.stage_steps >= s.limit):
            ends[b] = True
            s.symmetric, s.sym_steps, s.stage_steps = False, s.stage_steps, 0
            a, z = (batch.state.batch == b).nonzero()[[0, -1], 0].tolist()
            s.sym_structure = _structure(s, positions[a : z + 1].numpy(), cells[b].numpy())
            s.stage_limit = config.max_steps
    if bool(ends.any()):
        _rebase(batch.state, ends, positions, cells, batch.params)
        batch.invalidate_ops()
    still = sym & ~ends
    use_f = torch.where(still[batch.state.batch][:, None], fs, forces)
    use_s = torch.where(still[:, None, None], ss, stress)
    return fire.filter_forces(batch.state, use_f, use_s, cells)
