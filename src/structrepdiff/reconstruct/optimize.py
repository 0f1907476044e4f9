"""Batched reconstruction: Adam on Cartesian positions inside basin hopping (docs/method.md).

Many crystals advance together in one flat batch. A crystal whose loss falls below the
threshold is removed from the working set at once, so converged crystals cost nothing more.
Loss of crystal b (raw descriptor units, so no feature is re-weighted):

    L_b = Σ_f |EAD_max - t_max| + |EAD_min - t_min|  /  Σ_f |t_max| + |t_min|
          + w_d · |d_min - t_d| / t_d
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from structrepdiff.descriptor.config import EADConfig
from structrepdiff.descriptor.ead import compute_ead
from structrepdiff.geometry.cell import params_to_matrix
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.geometry.neighbors import neighbor_list
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.representation.encode import pool


@dataclass(frozen=True)
class Target:
    """What one crystal must match: species (n,), lattice (6,) Å/deg, EAD blocks (F,), d_min Å."""

    id: str
    numbers: np.ndarray
    lattice: np.ndarray
    ead_max: np.ndarray
    ead_min: np.ndarray
    d_min: float


@dataclass
class Outcome:
    """Best crystal found: positions (n, 3) Å wrapped into the cell, cell (3, 3) rows."""

    id: str
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    loss: float
    converged: bool
    steps: int


@dataclass
class _Set:
    """A set of crystals being optimised: flat atoms, per-crystal cells and targets."""

    numbers: Tensor  # (N,)
    batch: Tensor  # (N,) crystal index within the set
    cell: Tensor  # (B, 3, 3)
    t_max: Tensor  # (B, F)
    t_min: Tensor  # (B, F)
    t_d: Tensor  # (B,)
    norm: Tensor  # (B,)

    def subset(self, keep: Tensor) -> tuple[_Set, Tensor]:
        """The crystals where ``keep`` (B,) is True, and the (N,) mask of their atoms."""
        atoms = keep[self.batch]
        remap = torch.cumsum(keep.long(), 0) - 1
        return _Set(
            self.numbers[atoms],
            remap[self.batch[atoms]],
            self.cell[keep],
            self.t_max[keep],
            self.t_min[keep],
            self.t_d[keep],
            self.norm[keep],
        ), atoms


def _stack(targets: list[Target], dtype: torch.dtype, device: str | torch.device = "cpu") -> _Set:
    """The targets as one set on ``device`` (built on the CPU, then moved)."""
    counts = torch.tensor([len(t.numbers) for t in targets])
    t_max = torch.tensor(np.stack([t.ead_max for t in targets]), dtype=dtype)
    t_min = torch.tensor(np.stack([t.ead_min for t in targets]), dtype=dtype)
    s = _Set(
        numbers=torch.as_tensor(np.concatenate([t.numbers for t in targets]), dtype=torch.long),
        batch=torch.repeat_interleave(torch.arange(len(targets)), counts),
        cell=params_to_matrix(torch.tensor(np.stack([t.lattice for t in targets]), dtype=dtype)),
        t_max=t_max, t_min=t_min,
        t_d=torch.tensor([t.d_min for t in targets], dtype=dtype),
        norm=t_max.abs().sum(1) + t_min.abs().sum(1),
    )  # fmt: skip
    return s if torch.device(device).type == "cpu" else _Set(*(
        getattr(s, f.name).to(device) for f in dataclasses.fields(s)))  # fmt: skip


def descriptor_loss(
    pos: Tensor, s: _Set, ead: EADConfig, nl, d_weight: float, overlap_weight: float = 0.0
) -> Tensor:
    """(B,) relative L1 loss of every crystal of the set at positions (N, 3)."""
    atoms = compute_ead(Crystals(pos, s.numbers, s.cell, s.batch), ead, nl)
    B = s.cell.shape[0]
    e_max, e_min, d_min = pool(atoms, s.batch, B)
    l1 = (e_max - s.t_max).abs().sum(1) + (e_min - s.t_min).abs().sum(1)
    d_term = torch.where(torch.isfinite(d_min), (d_min - s.t_d).abs() / s.t_d, 1.0)
    loss = l1 / s.norm + d_weight * d_term
    if overlap_weight:
        t_d = s.t_d[s.batch]
        short = torch.relu(t_d - atoms.nearest.clamp(max=1e3)) / t_d
        n = torch.bincount(s.batch, minlength=B).to(short.dtype)
        loss = loss + overlap_weight * short.new_zeros(B).index_add(0, s.batch, short) / n
    return loss


def wrap(pos: Tensor, s: _Set) -> Tensor:
    """Positions (N, 3) moved into their cell (fractional coordinates in [0, 1))."""
    cell = s.cell[s.batch]
    frac = torch.linalg.solve(cell.transpose(1, 2), pos[..., None])[..., 0]
    return torch.einsum("nk,nkl->nl", frac - torch.floor(frac), cell)


class _Descent:
    """Adam on positions of a shrinking working set, with a Verlet neighbour list."""

    def __init__(self, pos: Tensor, s: _Set, ead: EADConfig, cfg: ReconstructConfig):
        self.s, self.ead, self.cfg = s, ead, cfg
        self.ids = torch.arange(s.cell.shape[0], device=pos.device)  # working set -> input
        self.pos, self.m, self.v = pos.clone(), torch.zeros_like(pos), torch.zeros_like(pos)
        self._rebuild()

    def _rebuild(self) -> None:
        with torch.no_grad():
            self.pos = wrap(self.pos, self.s)
        crystals = Crystals(self.pos, self.s.numbers, self.s.cell, self.s.batch)
        self.nl = neighbor_list(crystals, self.ead.cutoff + self.cfg.skin)
        self.ref = self.pos.clone()

    def keep(self, keep: Tensor) -> None:
        """Drop the crystals of the working set where ``keep`` is False."""
        self.s, atoms = self.s.subset(keep)
        self.ids, self.pos, self.m, self.v = (
            self.ids[keep],
            self.pos[atoms],
            self.m[atoms],
            self.v[atoms],
        )
        if len(self.ids):
            self._rebuild()

    def step(self, t: int, lr: float) -> tuple[Tensor, Tensor]:
        """Loss (B,) at the current positions, then one Adam update; returns (loss, positions)."""
        if (self.pos - self.ref).norm(dim=1).max() > 0.5 * self.cfg.skin:
            self._rebuild()
        pos = self.pos.detach().requires_grad_(True)
        loss = descriptor_loss(
            pos, self.s, self.ead, self.nl, self.cfg.d_min_weight, self.cfg.overlap_weight
        )
        (grad,) = torch.autograd.grad(loss.sum(), pos)
        grad = torch.nan_to_num(grad)
        with torch.no_grad():
            b1, b2 = 0.9, 0.999
            self.m.mul_(b1).add_(grad, alpha=1 - b1)
            self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            m_hat, v_hat = self.m / (1 - b1 ** (t + 1)), self.v / (1 - b2 ** (t + 1))
            before = self.pos.clone()
            self.pos = self.pos - lr * m_hat / (v_hat.sqrt() + 1e-8)
        return loss.detach(), before


def descend(
    pos0: Tensor, s: _Set, ead: EADConfig, cfg: ReconstructConfig, on_step=None
) -> tuple[Tensor, Tensor, Tensor]:
    """One hop: up to ``cfg.steps`` Adam steps from pos0 (N, 3).

    Returns the best positions seen (N, 3), their loss (B,) and the steps taken (B,).
    A crystal stops as soon as its loss is below ``cfg.threshold``, or (``cfg.patience`` > 0)
    once its best loss, above ``cfg.plateau_floor``, has not fallen by a fraction
    ``cfg.plateau_tol`` in that many steps.
    ``on_step(step, ids, loss)``, when given, sees every step's losses (B_active,) of the
    crystals ``ids`` of s.
    """
    B = s.cell.shape[0]
    best_loss = torch.full((B,), math.inf, dtype=pos0.dtype, device=pos0.device)
    best_pos, steps = pos0.clone(), torch.zeros(B, dtype=torch.long, device=pos0.device)
    ref_loss, ref_step = best_loss.clone(), torch.zeros_like(steps)  # plateau rule
    run = _Descent(pos0, s, ead, cfg)
    decay = (cfg.lr_end / cfg.lr_start) ** (1.0 / max(cfg.steps - 1, 1))
    for t in range(cfg.steps):
        loss, pos = run.step(t, cfg.lr_start * decay**t)
        if on_step is not None:
            on_step(t, run.ids, loss)
        ids = run.ids
        steps[ids] += 1
        better = loss < best_loss[ids]
        best_loss[ids] = torch.minimum(best_loss[ids], loss)
        atoms_out = torch.isin(s.batch, ids[better])
        best_pos[atoms_out] = pos[better[run.s.batch]]
        done = loss < cfg.threshold
        if cfg.patience:
            moved = best_loss[ids] < ref_loss[ids] * (1 - cfg.plateau_tol)
            ref_loss[ids[moved]], ref_step[ids[moved]] = best_loss[ids[moved]], t
            done |= (t - ref_step[ids] >= cfg.patience) & (best_loss[ids] > cfg.plateau_floor)
        if done.any():
            run.keep(~done)
            if not len(run.ids):
                break
    return best_pos, best_loss, steps


def crystal_generator(seed: int, crystal_id: str) -> torch.Generator:
    """A generator private to one crystal, so its draws do not depend on batch composition."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{crystal_id}".encode()))


def _draw(s: _Set, gens: list[torch.Generator], fractional: bool) -> Tensor:
    """(N, 3): uniform fractional positions as Cartesian (fractional=True), or U[-1, 1] Å."""
    counts = torch.bincount(s.batch, minlength=s.cell.shape[0]).tolist()
    out = []
    for k, (n, g) in enumerate(zip(counts, gens, strict=True)):
        u = torch.rand((n, 3), generator=g, dtype=torch.float64).to(s.cell)
        out.append(u @ s.cell[k] if fractional else 2.0 * u - 1.0)
    return torch.cat(out)


def _keep_better(
    best: tuple[Tensor, Tensor, Tensor],
    dst_batch: Tensor,
    ids: Tensor,
    found: tuple[Tensor, Tensor, Tensor],
    src_batch: Tensor,
) -> None:
    """Greedy acceptance in place. ``best`` = (positions (N, 3), loss (B,), steps (B,)) of the
    full set; ``found`` = the same for its crystals ``ids``, whose atoms are ``src_batch``."""
    best_pos, best_loss, steps = best
    pos, loss, st = found
    steps[ids] += st
    better = loss < best_loss[ids]
    best_loss[ids[better]] = loss[better]
    best_pos[torch.isin(dst_batch, ids[better])] = pos[better[src_batch]]


def _hop(pos: Tensor, s: _Set, gens: list[torch.Generator], cfg: ReconstructConfig) -> Tensor:
    """A basin hop from pos (N, 3): every coordinate moves by U[-h, h] Å; with probability
    ``cfg.swap_prob`` a crystal instead swaps two atoms of different species (if it has two)."""
    moved = pos + cfg.hop_size * _draw(s, gens, fractional=False)
    if cfg.swap_prob <= 0:
        return moved
    starts = torch.cumsum(torch.bincount(s.batch, minlength=s.cell.shape[0]), 0).tolist()
    for k, g in enumerate(gens):
        a0, a1 = (starts[k - 1] if k else 0), starts[k]
        z = s.numbers[a0:a1]
        if float(torch.rand((), generator=g)) >= cfg.swap_prob or bool((z == z[0]).all()):
            continue
        i = int(torch.randint(a1 - a0, (), generator=g))
        others = (z != z[i]).nonzero()[:, 0]
        j = int(others[int(torch.randint(len(others), (), generator=g))])
        moved[a0:a1] = pos[a0:a1]
        moved[a0 + i], moved[a0 + j] = pos[a0 + j], pos[a0 + i]
    return moved


def _no_best(pos: Tensor, n_crystals: int) -> tuple[Tensor, Tensor, Tensor]:
    """(positions, loss = inf, steps = 0): the state before anything was accepted."""
    return (
        pos,
        torch.full((n_crystals,), math.inf, dtype=pos.dtype, device=pos.device),
        torch.zeros(n_crystals, dtype=torch.long, device=pos.device),
    )


def _hop_loop(
    sub: _Set,
    gens: list[torch.Generator],
    ead: EADConfig,
    cfg: ReconstructConfig,
    start: Tensor,
    on_step=None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One trial for every crystal of ``sub`` from positions ``start`` (N, 3): a descent, then
    greedy basin hopping around the best positions. ``on_step(hop, step, ids, loss)``: as in
    `descend`, ids indexing ``sub``."""
    best_pos, best_loss, steps = _no_best(start, sub.cell.shape[0])
    for hop in range(cfg.hops):
        active = best_loss >= cfg.threshold
        if not active.any():
            break
        hs, atoms = sub.subset(active)
        init = best_pos[atoms]
        if hop > 0:
            act_gens = [g for g, a in zip(gens, active.tolist(), strict=True) if a]
            init = _hop(init, hs, act_gens, cfg)
        where = active.nonzero()[:, 0]
        hook = (
            None
            if on_step is None
            else (lambda t, ids, loss, hop=hop, where=where: on_step(hop, t, where[ids], loss))
        )
        found = descend(init, hs, ead, cfg, hook)
        _keep_better((best_pos, best_loss, steps), sub.batch, where, found, hs.batch)
    return best_pos, best_loss, steps


def _trial_start(sub: _Set, gens: list[torch.Generator], starts: list, trial: int) -> Tensor:
    """(N, 3) start of one trial: uniform random, except crystals with a given start for it
    (``starts[b]``: fractional (n_b, 3) arrays, used in order, one per trial)."""
    pos = _draw(sub, gens, fractional=True)  # always drawn, so the random stream is the same
    counts = torch.bincount(sub.batch, minlength=sub.cell.shape[0]).tolist()
    offsets = np.cumsum([0, *counts]).tolist()
    for b, given in enumerate(starts):
        if trial < len(given):
            frac = torch.as_tensor(np.asarray(given[trial])).to(pos)
            pos[offsets[b] : offsets[b + 1]] = frac @ sub.cell[b]
    return pos


def rank_starts(
    target: Target,
    starts: list[np.ndarray],
    ead: EADConfig,
    cfg: ReconstructConfig,
    keep: int,
    chunk: int | None = None,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """The ``keep`` fractional starts (n, 3) with the lowest loss against ``target``, best
    first (ties keep their given order); the losses are computed on ``device``, ``chunk``
    starts at a time (default 64 on a CPU, 256 elsewhere: one pass for the usual budget)."""
    if not starts:
        return []
    chunk = chunk or (64 if torch.device(device).type == "cpu" else 256)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    losses = []
    for c0 in range(0, len(starts), chunk):
        part = starts[c0 : c0 + chunk]
        s = _stack([target] * len(part), dtype, device)
        frac = torch.as_tensor(np.concatenate(part), dtype=dtype).to(device)
        with torch.no_grad():
            pos = torch.einsum("nk,nkl->nl", frac, s.cell[s.batch])
            losses.append(descriptor_loss(pos, s, ead, None, cfg.d_min_weight, cfg.overlap_weight))
    order = torch.cat(losses).double().cpu().numpy().argsort(kind="stable")
    return [starts[k] for k in order[:keep]]


def reconstruct_batch(
    targets: list[Target],
    ead: EADConfig,
    cfg: ReconstructConfig,
    starts: list[list[np.ndarray]] | None = None,
    on_step=None,
    device: str | torch.device = "cpu",
) -> list[Outcome]:
    """Reconstruct a batch of crystals; every target must have atoms and a valid lattice.

    ``starts[b]`` optionally lists fractional starting positions (n_b, 3) for crystal b, one
    per trial in order (e.g. from `rank_starts`); trials beyond them start at random.
    ``on_step(trial, hop, step, ids, loss)``, for studies of the descent, sees the loss (k,)
    of the crystals ``ids`` (k,) (indices into ``targets``) still running after every step.
    Everything runs on ``device`` (the neighbour list is built on the CPU and moved there);
    per-crystal random draws stay on the CPU, so a device changes only rounding.
    """
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    s = _stack(targets, dtype, device)
    gens = [crystal_generator(cfg.seed, t.id) for t in targets]
    B = len(targets)
    best_pos, best_loss, steps = _no_best(s.cell.new_zeros(s.numbers.shape[0], 3), B)
    for trial in range(cfg.trials):
        todo = best_loss >= cfg.threshold
        if not todo.any():
            break
        sub, _atoms = s.subset(todo)
        ids = todo.nonzero()[:, 0]
        sub_gens = [gens[i] for i in ids.tolist()]
        given = [starts[i] for i in ids.tolist()] if starts else []
        hook = (
            None
            if on_step is None
            else (
                lambda hop, t, i, loss, trial=trial, ids=ids: on_step(trial, hop, t, ids[i], loss)
            )
        )
        found = _hop_loop(sub, sub_gens, ead, cfg, _trial_start(sub, sub_gens, given, trial),
                          hook)  # fmt: skip
        _keep_better((best_pos, best_loss, steps), s.batch, ids, found, sub.batch)
    final = wrap(best_pos, s)
    counts = torch.bincount(s.batch, minlength=B).tolist()
    return [
        Outcome(
            t.id,
            np.asarray(t.numbers),
            p.double().cpu().numpy(),
            c.double().cpu().numpy(),
            float(loss),
            bool(loss < cfg.threshold),
            int(n),
        )
        for t, p, c, loss, n in zip(
            targets, torch.split(final, counts), s.cell, best_loss, steps, strict=True
        )
    ]


def true_targets(ids, structures, rep, dtype: torch.dtype = torch.float64):
    """For studies of the loss landscape: the targets of crystals from their own R, their
    stacked set (as `descriptor_loss` takes it) and the true positions (N, 3) Å in the cells
    rebuilt from R (atoms in decode's order: Niggli cell, sorted by Z)."""
    from structrepdiff.representation.decode import decode
    from structrepdiff.representation.encode import canonical, encode_structures

    structures = [canonical(s).get_sorted_structure(key=lambda x: x.specie.Z) for s in structures]
    dec = decode(encode_structures(structures, rep), rep)
    targets = [Target(i, x.numbers, x.lattice, x.ead_max, x.ead_min, x.d_min)
               for i, x in zip(ids, dec, strict=True)]  # fmt: skip
    s = _stack(targets, dtype)
    pos = torch.cat([torch.tensor(st.frac_coords, dtype=dtype) @ s.cell[b]
                     for b, st in enumerate(structures)])  # fmt: skip
    return targets, s, pos
