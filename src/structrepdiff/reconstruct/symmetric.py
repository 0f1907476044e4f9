"""Reconstruction inside a space group: Adam on Wyckoff free parameters and the lattice of the
group's crystal system (docs/method.md, "Symmetric reconstruction").

A crystal is (group, Wyckoff pattern, orbit free vectors xyz (O, 3), lattice θ (6,)). Atom n of
orbit o sits at ``frac_n = rot_n @ xyz_o + trans_n`` in the conventional cell L(θ); the periodic
cell is the primitive one, T @ L(θ) (or L(θ) itself when the target's atom count is that of the
conventional cell). Every configuration the descent visits has the group's symmetry, so P1
comes out only when P1 was chosen. Loss of crystal b:

    L_b = descriptor loss (as `optimize.descriptor_loss`) + w_lat · lattice_loss(reduced cell)

where the lattice term pulls the Niggli-reduced cell toward the target's lattice block.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from structrepdiff.descriptor.config import EADConfig
from structrepdiff.geometry.cell import params_to_matrix
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.geometry.neighbors import neighbor_list
from structrepdiff.reconstruct.config import ReconstructConfig, SymmetricConfig  # noqa: F401
from structrepdiff.reconstruct.optimize import (
    Outcome,
    Target,
    _stack,
    crystal_generator,
    descriptor_loss,
)
from structrepdiff.symmetry.groups import (
    centering_matrix,
    centering_order,
    group_orbits,
    pattern_counts,
    pattern_problem,
)
from structrepdiff.symmetry.lattice import (
    conventional_cell,
    free_from_params,
    lattice_candidates,
    lattice_loss,
    niggli_maps,
    tie_matrix,
)


@dataclass(frozen=True)
class SymTarget:
    """A target with its group and Wyckoff pattern ((Z, letter), ... one per orbit)."""

    target: Target
    sg: int
    pattern: tuple[tuple[int, str], ...]

    @property
    def id(self) -> str:
        return self.target.id

    def primitive(self) -> bool:
        """True when the target's atom count is the pattern's primitive-cell count."""
        return sum(pattern_counts(self.sg, self.pattern, True).values()) == len(self.target.numbers)


@dataclass
class SymOutcome(Outcome):
    """`Outcome` plus the group and pattern it was built in and the two loss terms; ``loss``
    is the descriptor loss (as for the free path), the lattice term is ``lattice_loss``."""

    sg: int = 1
    pattern: tuple = ()
    descriptor_loss: float = math.nan
    lattice_loss: float = math.nan


@dataclass
class Start:
    """A starting point: orbit free vectors xyz (O, 3) and conventional lattice (6,) Å/deg."""

    xyz: np.ndarray
    lattice: np.ndarray
    source: str = "random"


@dataclass
class _Layout:
    """Integer tables and constants of a set of symmetric crystals (B crystals, O orbits,
    N atoms); geometry comes from (xyz (O, 3), θ (B, 6)) through `positions_and_cell`."""

    numbers: Tensor  # (N,)
    batch: Tensor  # (N,)
    atom_orbit: Tensor  # (N,) orbit index
    rot: Tensor  # (N, 3, 3)
    trans: Tensor  # (N, 3)
    orbit_batch: Tensor  # (O,)
    T: Tensor  # (B, 3, 3) periodic cell = T @ conventional cell
    A: Tensor  # (B, 6, 6)
    base: Tensor  # (B, 6)
    target_lattice: Tensor  # (B, 6)
    loss_set: object  # optimize._Set: descriptor targets (its cell is replaced every step)

    def subset(self, keep: Tensor) -> _Layout:
        """The crystals where ``keep`` (B,) is True."""
        atoms, orbits = keep[self.batch], keep[self.orbit_batch]
        remap_b = torch.cumsum(keep.long(), 0) - 1
        remap_o = torch.cumsum(orbits.long(), 0) - 1
        ls, _ = self.loss_set.subset(keep)
        return _Layout(
            self.numbers[atoms], remap_b[self.batch[atoms]], remap_o[self.atom_orbit[atoms]],
            self.rot[atoms], self.trans[atoms], remap_b[self.orbit_batch[orbits]],
            self.T[keep], self.A[keep], self.base[keep], self.target_lattice[keep], ls)  # fmt: skip


def _layout(targets: list[SymTarget], dtype: torch.dtype) -> _Layout:
    """The tables of ``targets`` (each checked by `pattern_problem` before)."""
    numbers, batch, atom_orbit, rot, trans, orbit_batch = [], [], [], [], [], []
    T, A, base = [], [], []
    o = 0
    for b, st in enumerate(targets):
        prim = st.primitive()
        c = centering_order(st.sg) if prim else 1
        T.append(centering_matrix(st.sg) if prim else np.eye(3))
        a, bs = tie_matrix(st.sg)
        A.append(a)
        base.append(bs)
        orbits = group_orbits(st.sg)
        for z, letter in st.pattern:
            orb = orbits[letter]
            m = orb.multiplicity // c
            numbers += [z] * m
            batch += [b] * m
            atom_orbit += [o] * m
            rot.append(orb.rot[:m])
            trans.append(orb.trans[:m])
            orbit_batch.append(b)
            o += 1
    loss_set = _stack([st.target for st in targets], dtype)
    f = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype)  # noqa: E731
    i = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.long)  # noqa: E731
    layout = _Layout(i(numbers), i(batch), i(atom_orbit), f(np.concatenate(rot)),
                     f(np.concatenate(trans)), i(orbit_batch), f(np.stack(T)), f(np.stack(A)),
                     f(np.stack(base)),
                     f(np.stack([st.target.lattice for st in targets])), loss_set)  # fmt: skip
    layout.loss_set = dataclasses.replace(loss_set, numbers=layout.numbers, batch=layout.batch)
    return layout


def positions_and_cell(xyz: Tensor, theta: Tensor, lay: _Layout) -> tuple[Tensor, Tensor]:
    """Cartesian positions (N, 3) Å and periodic cells (B, 3, 3) of free vectors xyz (O, 3)
    and lattice θ (B, 6); differentiable in both."""
    conv = conventional_cell(theta, lay.A, lay.base)
    frac = torch.einsum("nij,nj->ni", lay.rot, xyz[lay.atom_orbit]) + lay.trans
    pos = torch.einsum("nk,nkl->nl", frac, conv[lay.batch])
    return pos, lay.T @ conv


def symmetric_loss(xyz: Tensor, theta: Tensor, lay: _Layout, ead: EADConfig, cfg,
                   nl=None, maps: Tensor | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(descriptor loss (B,), lattice loss (B,)) at (xyz, θ). The descriptor is computed in
    the reduced cells ``maps @ cell`` (Niggli maps of the current cells when None): the same
    lattice in a short basis, so a skewed primitive cell costs no more neighbour images."""
    pos, cell = positions_and_cell(xyz, theta, lay)
    red = (niggli_maps(cell) if maps is None else maps) @ cell
    s = dataclasses.replace(lay.loss_set, cell=red)
    d = descriptor_loss(pos, s, ead, nl, cfg.d_min_weight, cfg.overlap_weight)
    return d, lattice_loss(red, lay.target_lattice)


class _Adam:
    """Adam on a list of tensors with per-row step sizes."""

    def __init__(self, params: list[Tensor]):
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def step(self, params: list[Tensor], grads: list[Tensor], t: int, lrs: list[Tensor]):
        b1, b2 = 0.9, 0.999
        out = []
        for p, g, m, v, lr in zip(params, grads, self.m, self.v, lrs, strict=True):
            g = torch.nan_to_num(g)
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            step = (m / (1 - b1 ** (t + 1))) / ((v / (1 - b2 ** (t + 1))).sqrt() + 1e-8)
            out.append(p - lr[:, None] * step)
        return out

    def keep(self, masks: list[Tensor]) -> None:
        self.m = [m[k] for m, k in zip(self.m, masks, strict=True)]
        self.v = [v[k] for v, k in zip(self.v, masks, strict=True)]


def _length_scale(theta: Tensor, lay: _Layout) -> Tensor:
    """(B,) cube root of the conventional cell volume, Å: turns Å steps into fractional ones."""
    with torch.no_grad():
        conv = conventional_cell(theta, lay.A, lay.base)
        return torch.linalg.det(conv).abs() ** (1.0 / 3.0)


def prefit_lattice(theta: Tensor, lay: _Layout, steps: int, lr: float = 0.05,
                   lr_end: float = 1e-4) -> Tensor:  # fmt: skip
    """θ (B, 6) after ``steps`` Adam steps (step size decayed geometrically lr → lr_end, in
    ln-length and radian units) on the lattice term alone: the cell of every start brought
    to the target's lattice block; the volume is matched first."""
    with torch.no_grad():
        conv = conventional_cell(theta, lay.A, lay.base)
        vol = torch.linalg.det(lay.T @ conv).abs()
        v_t = torch.linalg.det(params_to_matrix(lay.target_lattice)).abs()
        scale = torch.log(v_t / vol) / 3.0
        lengths = lay.A[:, :3, :].sum(1) > 0  # free columns that are lengths
        theta = theta + lengths.to(theta.dtype) * scale[:, None]
    adam = _Adam([theta])
    maps = None
    for t in range(steps):
        th = theta.detach().requires_grad_(True)
        cell = lay.T @ conventional_cell(th, lay.A, lay.base)
        if t % 10 == 0:
            maps = niggli_maps(cell)
        loss = lattice_loss(maps @ cell, lay.target_lattice)
        (g,) = torch.autograd.grad(loss.sum(), th)
        with torch.no_grad():
            lr_t = lr * (lr_end / lr) ** (t / max(steps - 1, 1))
            (theta,) = adam.step([theta], [g], t, [torch.full_like(loss, lr_t)])
    return theta.detach()


class _SymDescent:
    """Adam on (xyz, θ) of a shrinking working set, with a Verlet neighbour list that is rebuilt
    once atoms or cells have moved enough to change a pair by the skin."""

    def __init__(self, xyz: Tensor, theta: Tensor, lay: _Layout, ead: EADConfig, cfg):
        self.lay, self.ead, self.cfg = lay, ead, cfg
        self.ids = torch.arange(lay.T.shape[0])
        self.xyz, self.theta = xyz.clone(), theta.clone()
        self.adam = _Adam([self.xyz, self.theta])
        self.scale = 1.0 / _length_scale(theta, lay)
        self.maps = self.map_cell = None
        self._rebuild()

    def _refresh_maps(self, cell: Tensor) -> None:
        """Niggli maps of the cells that changed by more than 2 % (relative Frobenius norm)
        since their map was computed (pymatgen's reduction costs ~2 ms a cell)."""
        if self.maps is None:
            self.maps, self.map_cell = niggli_maps(cell), cell.clone()
            return
        rel = (cell - self.map_cell).flatten(1).norm(dim=1) / self.map_cell.flatten(1).norm(dim=1)
        stale = (rel > 0.02).nonzero()[:, 0]
        if len(stale):
            self.maps[stale] = niggli_maps(cell[stale])
            self.map_cell[stale] = cell[stale]

    def _rebuild(self) -> None:
        with torch.no_grad():
            pos, cell = positions_and_cell(self.xyz, self.theta, self.lay)
        self._refresh_maps(cell)
        red = self.maps @ cell
        self.nl = neighbor_list(Crystals(pos, self.lay.numbers, red, self.lay.batch),
                                self.ead.cutoff + self.cfg.skin)  # fmt: skip
        self.ref = (pos, red)
        self.reach = float(self.nl.shifts.abs().sum(1).max()) if len(self.nl) else 0.0

    def _moved(self) -> bool:
        with torch.no_grad():
            pos, cell = positions_and_cell(self.xyz, self.theta, self.lay)
            d_pos = (pos - self.ref[0]).norm(dim=1).max()
            d_cell = (self.maps @ cell - self.ref[1]).norm(dim=2).max()
        return bool(2 * d_pos + self.reach * d_cell > self.cfg.skin)

    def keep(self, keep: Tensor) -> None:
        orbits = keep[self.lay.orbit_batch]
        self.adam.keep([orbits, keep])
        self.xyz, self.theta, self.scale = self.xyz[orbits], self.theta[keep], self.scale[keep]
        self.maps, self.map_cell = self.maps[keep], self.map_cell[keep]
        self.lay, self.ids = self.lay.subset(keep), self.ids[keep]
        if len(self.ids):
            self._rebuild()

    def step(self, t: int, lr: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(total, descriptor, lattice) losses (B,) at the current point, then one Adam step;
        also returns the point (xyz, θ) the losses belong to."""
        if self._moved():
            self._rebuild()
        xyz = self.xyz.detach().requires_grad_(True)
        theta = self.theta.detach().requires_grad_(True)
        d, lat = symmetric_loss(xyz, theta, self.lay, self.ead, self.cfg, self.nl, self.maps)
        loss = d + self.cfg.lattice_weight * lat
        g_xyz, g_theta = torch.autograd.grad(loss.sum(), [xyz, theta])
        point = (self.xyz.clone(), self.theta.clone())
        lr_b = lr * self.scale
        with torch.no_grad():
            self.xyz, self.theta = self.adam.step(
                [self.xyz, self.theta], [g_xyz, g_theta], t,
                [lr_b[self.lay.orbit_batch], lr_b])  # fmt: skip
        return loss.detach(), torch.stack([d.detach(), lat.detach()], 1), *point


def _descend(xyz0: Tensor, theta0: Tensor, lay: _Layout, ead: EADConfig, cfg):
    """One hop from (xyz0, θ0): best (xyz, θ), their losses (B, 3) = (total, descriptor,
    lattice) and steps (B,). Stops as `optimize.descend` does (threshold on the descriptor
    loss, plateau rule on the total)."""
    B = lay.T.shape[0]
    best = torch.full((B, 3), math.inf, dtype=xyz0.dtype)
    best_xyz, best_theta = xyz0.clone(), theta0.clone()
    steps = torch.zeros(B, dtype=torch.long)
    ref_loss, ref_step = torch.full((B,), math.inf, dtype=xyz0.dtype), torch.zeros_like(steps)
    run = _SymDescent(xyz0, theta0, lay, ead, cfg)
    decay = (cfg.lr_end / cfg.lr_start) ** (1.0 / max(cfg.steps - 1, 1))
    for t in range(cfg.steps):
        loss, parts, xyz, theta = run.step(t, cfg.lr_start * decay**t)
        ids = run.ids
        steps[ids] += 1
        better = loss < best[ids, 0]
        best[ids[better]] = torch.cat([loss[:, None], parts], 1)[better]
        best_theta[ids[better]] = theta[better]
        o_better = better[run.lay.orbit_batch]
        dest = torch.isin(lay.orbit_batch, ids[better])
        best_xyz[dest] = xyz[o_better]
        done = best[ids, 1] < cfg.threshold
        if cfg.patience:
            moved = best[ids, 0] < ref_loss[ids] * (1 - cfg.plateau_tol)
            ref_loss[ids[moved]], ref_step[ids[moved]] = best[ids[moved], 0], t
            done |= (t - ref_step[ids] >= cfg.patience) & (best[ids, 0] > cfg.plateau_floor)
        if done.any():
            run.keep(~done)
            if not len(run.ids):
                break
    return best_xyz, best_theta, best, steps


def random_starts(st: SymTarget, k: int, gen: torch.Generator) -> list[Start]:
    """``k`` starts with uniform random free vectors (seeded from ``gen``), each in one of the
    conventional cells of the group's system that fit the target's lattice block
    (`lattice_candidates`, taken in turn).

    pyxtal's ``from_random`` was the first choice and was dropped: with the Wyckoff sites
    fixed it took ~100 s per crystal on some MP-20 patterns (BENCHMARKS.md, issue 26)."""
    cells = lattice_candidates(st.sg, np.asarray(st.target.lattice, float))
    return [Start(torch.rand((len(st.pattern), 3), generator=gen, dtype=torch.float64).numpy(),
                  cells[j % len(cells)].copy(), "random") for j in range(k)]  # fmt: skip


def _point(starts: list[Start], sts: list[SymTarget], dtype) -> tuple[Tensor, Tensor]:
    """(xyz (O, 3), θ (B, 6)) of one start per crystal."""
    xyz = torch.as_tensor(np.concatenate([s.xyz for s in starts]), dtype=dtype)
    theta = torch.as_tensor(
        np.stack(
            [
                free_from_params(st.sg, np.asarray(s.lattice, float))
                for s, st in zip(starts, sts, strict=True)
            ]
        ),
        dtype=dtype,
    )
    return xyz, theta


def rank_symmetric_starts(st: SymTarget, starts: list[Start], ead: EADConfig, cfg,
                          keep: int) -> list[tuple[Start, np.ndarray, float]]:  # fmt: skip
    """The ``keep`` starts with the lowest total loss after their lattice is prefitted, best
    first, as (start, θ (6,), lattice loss)."""
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    sts = [st] * len(starts)
    lay = _layout(sts, dtype)
    xyz, theta = _point(starts, sts, dtype)
    theta = prefit_lattice(theta, lay, cfg.prefit_steps)
    with torch.no_grad():
        d, lat = symmetric_loss(xyz, theta, lay, ead, cfg)
    total = (d + cfg.lattice_weight * lat).double().nan_to_num(math.inf).numpy()
    order = total.argsort(kind="stable")[:keep]
    return [(starts[k], theta[k].double().numpy(), float(lat[k])) for k in order]


def too_close(xyz: Tensor, theta: Tensor, lay: _Layout, d: float) -> Tensor:
    """(B,) bool: the crystal built from (xyz, θ) has two atoms (or an atom and its own
    image) closer than ``d`` Å; all False for ``d`` = 0."""
    B = lay.T.shape[0]
    if d <= 0:
        return torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        pos, cell = positions_and_cell(xyz, theta, lay)
        nl = neighbor_list(Crystals(pos, lay.numbers, cell, lay.batch), d)
    out = torch.zeros(B, dtype=torch.bool)
    out[lay.batch[nl.i]] = True
    return out


def _outcome(st: SymTarget, xyz: Tensor, theta: Tensor, loss: Tensor, steps: int,
             threshold: float) -> SymOutcome:  # fmt: skip
    dtype = xyz.dtype
    lay = _layout([st], dtype)
    with torch.no_grad():
        pos, cell = positions_and_cell(xyz, theta, lay)
        cell = niggli_maps(cell) @ cell
    frac = pos.double() @ torch.linalg.inv(cell[0].double())
    frac = frac - torch.floor(frac)
    _, d, lat = (float(x) for x in loss)  # the total (ranking the trials) is d + w · lat
    return SymOutcome(
        st.id, lay.numbers.numpy(), (frac @ cell[0].double()).numpy(),
        cell[0].double().numpy(), d, bool(d < threshold), int(steps), st.sg, st.pattern,
        d, lat)  # fmt: skip


def _hop(xyz: Tensor, lay: _Layout, theta: Tensor, gens: list[torch.Generator], h: float):
    """Free vectors moved by U[-h, h] Å (as fractions of each crystal's length scale)."""
    scale = 1.0 / _length_scale(theta, lay)
    counts = torch.bincount(lay.orbit_batch, minlength=len(gens)).tolist()
    u = torch.cat([torch.rand((n, 3), generator=g, dtype=torch.float64)
                   for n, g in zip(counts, gens, strict=True)]).to(xyz)  # fmt: skip
    return xyz + h * (2 * u - 1) * scale[lay.orbit_batch, None]


def reconstruct_symmetric(
    targets: list[SymTarget], ead: EADConfig, cfg: SymmetricConfig,
    starts: list[list[Start]] | None = None,
) -> list[SymOutcome | tuple[str, str]]:  # fmt: skip
    """Reconstruct each target inside its group and pattern, in order.

    Candidate starts per target: ``starts[b]`` (e.g. element-substituted templates) and
    ``cfg.random_starts`` random points of the group; the best ``cfg.trials`` after a
    lattice prefit are descended (``cfg.hops`` hops each). A target whose pattern cannot
    hold its atoms comes back as (id, reason).
    """
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    out: dict[int, SymOutcome | tuple[str, str]] = {}
    todo, ranked = [], []
    for b, st in enumerate(targets):
        reason = pattern_problem(st.sg, st.pattern, st.target.numbers)
        if reason is not None:
            out[b] = (st.id, reason)
            continue
        gen = crystal_generator(cfg.seed, st.id)
        cands = list(starts[b]) if starts else []
        cands += random_starts(st, cfg.random_starts, gen)
        todo.append(b)
        ranked.append((gen, rank_symmetric_starts(st, cands, ead, cfg, cfg.trials)))
    best: dict[int, tuple[Tensor, Tensor, Tensor, int, bool]] = {}
    for trial in range(cfg.trials):
        run = [k for k, b in enumerate(todo) if trial < len(ranked[k][1])
               and (b not in best or float(best[b][2][1]) >= cfg.threshold
                    or not best[b][4])]  # fmt: skip
        if not run:
            break
        sts = [targets[todo[k]] for k in run]
        lay = _layout(sts, dtype)
        xyz = torch.as_tensor(np.concatenate([ranked[k][1][trial][0].xyz for k in run]),
                              dtype=dtype)  # fmt: skip
        theta = torch.as_tensor(np.stack([ranked[k][1][trial][1] for k in run]), dtype=dtype)
        for hop in range(cfg.hops):
            if hop:
                xyz = _hop(xyz, lay, theta, [ranked[k][0] for k in run], cfg.hop_size)
            bx, bt, bl, n = _descend(xyz, theta, lay, ead, cfg)
            ok = ~too_close(bx, bt, lay, cfg.min_distance)
            xyz_split = torch.split(bx, torch.bincount(lay.orbit_batch).tolist())
            for j, k in enumerate(run):
                b = todo[k]
                prev_steps = best[b][3] if b in best else 0
                new = (not bool(ok[j]), float(bl[j, 0]))  # valid first, then the loss
                if b not in best or new < (not best[b][4], float(best[b][2][0])):
                    best[b] = (xyz_split[j], bt[j : j + 1], bl[j], prev_steps + int(n[j]),
                               bool(ok[j]))  # fmt: skip
                else:
                    best[b] = (*best[b][:3], prev_steps + int(n[j]), best[b][4])
            xyz = torch.cat([best[todo[k]][0] for k in run])
            theta = torch.cat([best[todo[k]][1] for k in run])
    for b, (x, t, loss, n, _) in best.items():
        out[b] = _outcome(targets[b], x, t, loss, n, cfg.threshold)
    return [out[b] for b in range(len(targets))]


class SymTemplates:
    """Training crystals written on Wyckoff parameters, indexed by (group, anonymous
    pattern): element-substituted starting points for targets of the same group and pattern.
    """

    def __init__(self, crystals):
        """``crystals``: (id, numbers (n,), `WyckoffCrystal`) of the training split (as
        `describe_split` gives them)."""
        from structrepdiff.symmetry.prior import anonymize

        self.index: dict = {}
        for rid, numbers, w in crystals:
            key = (w.sg, anonymize(numbers, w.pattern))
            self.index.setdefault(key, []).append((rid, np.asarray(numbers), w))

    def __len__(self) -> int:
        return sum(len(v) for v in self.index.values())

    def of_formula(self, anon: tuple[int, ...]) -> list:
        """The crystals of anonymous formula ``anon`` (e.g. (1, 1, 3)), in index order; the
        per-formula index is built on first use."""
        if not hasattr(self, "_by_formula"):
            from structrepdiff.symmetry.prior import anonymous_formula

            self._by_formula: dict = {}
            for fs in self.index.values():
                for f in fs:
                    self._by_formula.setdefault(anonymous_formula(f[1]), []).append(f)
        return self._by_formula.get(anon, [])

    def starts(self, st: SymTarget, limit: int = 16) -> list[Start]:
        """Up to ``limit`` templates of the target's group and pattern (cell shapes closest
        to the target's first; never one with the target's own id), their species replaced
        rank for rank, orbits in the target's pattern order."""
        from structrepdiff.symmetry.prior import _ranked_species, anonymize

        found = [f for f in self.index.get((st.sg, anonymize(st.target.numbers, st.pattern)), [])
                 if f[0] != st.id]  # fmt: skip
        species = _ranked_species(st.target.numbers)
        want = _shape(lattice_candidates(st.sg, np.asarray(st.target.lattice, float))[0])
        found = sorted(found, key=lambda f: float(np.abs(_shape(f[2].lattice) - want).sum()))
        return [Start(substituted_xyz(species, st.pattern, numbers, w),
                      np.asarray(w.lattice, float), "template")
                for _, numbers, w in found[:limit]]  # fmt: skip


def substituted_xyz(species: list[int], pattern, numbers, w) -> np.ndarray:
    """(O, 3) free vectors of template ``w`` (atoms ``numbers``) with its species replaced
    rank for rank by ``species`` (ranked, `_ranked_species`), in ``pattern``'s orbit order
    (the same anonymous pattern)."""
    from structrepdiff.symmetry.prior import _ranked_species

    rank = {z: r for r, z in enumerate(_ranked_species(numbers))}
    mapped = [(species[rank[int(z)]], x) for z, x in w.pattern]
    xyz, used = np.zeros((len(pattern), 3)), [False] * len(mapped)
    for i, key in enumerate(pattern):
        j = next(j for j, m in enumerate(mapped) if not used[j] and m == tuple(key))
        used[j], xyz[i] = True, w.xyz[j]
    return xyz


def _shape(lattice: np.ndarray) -> np.ndarray:
    """(6,) volume-free cell shape: ln lengths minus their mean, angles in radians."""
    ln = np.log(np.asarray(lattice[:3], float))
    return np.concatenate([ln - ln.mean(), np.radians(np.asarray(lattice[3:], float))])
