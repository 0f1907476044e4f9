"""Periodic neighbour pairs within a cutoff over all images (integer data, built without gradients).

Geometry is recomputed from positions and cell so gradients flow (MACE / torch-sim style):
``r_ij = positions[j] - positions[i] + shifts @ cell[batch[i]]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from structrepdiff.geometry.crystals import Crystals

_MAX_CANDIDATES = 1 << 22  # pair-image candidates examined at once (memory bound)
# Mean neighbours per atom within the cutoff above which a crystal is refused before any pair
# is built: 20,000 is ~3× the densest real crystals at R_c = 20 Å (diamond, 0.18 atoms/Å³,
# has ~6,000), while a 1-atom cell of 0.003 Å³ would ask for ~11 million (gigabytes of pairs).
MAX_PAIRS_PER_ATOM = 20_000


def expected_pairs_per_atom(n_atoms: int, volume: float, cutoff: float) -> float:
    """Mean number of neighbours per atom within ``cutoff`` (Å) of a crystal of ``n_atoms``
    in a cell of ``volume`` (Å³): n · (4/3)π r³ / V (inf for a non-positive volume)."""
    if volume <= 0:
        return math.inf
    return n_atoms * (4.0 / 3.0) * math.pi * cutoff**3 / volume


def pair_budget_reason(n_atoms: int, volume: float, cutoff: float,
                       limit: float = MAX_PAIRS_PER_ATOM) -> str | None:  # fmt: skip
    """Why a crystal would need too many neighbour pairs (the work and memory of EAD), else
    None. Checked before allocating anything."""
    pairs = expected_pairs_per_atom(n_atoms, volume, cutoff)
    if pairs <= limit:
        return None
    return (f"too dense for R_c = {cutoff:g} Å: {n_atoms} atoms in {volume:.3g} Å³ would need "
            f"~{pairs:.3g} neighbour pairs per atom (limit {limit:g})")  # fmt: skip


@dataclass
class NeighborList:
    """Directed pairs (i, j, shift), sorted by centre atom i.

    Attributes:
        i: (P,) global index of the centre atom.
        j: (P,) global index of the neighbour atom.
        shifts: (P, 3) integer image shift (int64) in units of the cell rows.
    """

    i: Tensor
    j: Tensor
    shifts: Tensor

    def __len__(self) -> int:
        return int(self.i.shape[0])


def _shift_grid(cell: Tensor, cutoff: float) -> Tensor:
    """(M, 3) integer shifts n with |n_k| <= cutoff·|b_k| + 1/2 (b_k reciprocal rows, no 2π).

    With fractional differences wrapped into [-1/2, 1/2], these shifts reach every image
    within ``cutoff``, however skewed the cell.
    """
    recip_len = torch.linalg.inv(cell).norm(dim=0)  # |b_k| = 1 / interplanar spacing
    reach = [math.floor(cutoff * float(r) + 0.5 + 1e-9) for r in recip_len]
    axes = [torch.arange(-k, k + 1, dtype=torch.float64) for k in reach]
    return torch.cartesian_prod(*axes).reshape(-1, 3)


def _crystal_pairs(pos: Tensor, cell: Tensor, cutoff: float, self_interaction: bool):
    """Local (i, j, shift) of one crystal; pos (n, 3), cell (3, 3), float64, no grad."""
    n = pos.shape[0]
    volume = abs(float(torch.linalg.det(cell)))
    if volume < 1e-12:
        raise ValueError("singular cell: lattice vectors are linearly dependent")
    reason = pair_budget_reason(n, volume, cutoff)
    if reason is not None:
        raise ValueError(reason)
    frac = pos @ torch.linalg.inv(cell)
    dfrac = frac[None, :, :] - frac[:, None, :]  # (n, n, 3): f_j - f_i
    wrap = torch.round(dfrac)
    base = (dfrac - wrap) @ cell  # (n, n, 3) minimum-image-ish vectors
    grid = _shift_grid(cell, cutoff)
    grid_cart = grid @ cell  # (M, 3)
    rows = max(1, _MAX_CANDIDATES // max(1, n * grid.shape[0]))
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, rows):
        vec = base[start : start + rows, :, None, :] + grid_cart[None, None]  # (r, n, M, 3)
        keep = (vec * vec).sum(-1) < cutoff * cutoff
        ii, jj, mm = keep.nonzero(as_tuple=True)
        ii = ii + start
        shift = grid[mm] - wrap[ii, jj]
        if not self_interaction:
            not_self = (ii != jj) | shift.abs().sum(-1).bool()
            ii, jj, shift = ii[not_self], jj[not_self], shift[not_self]
        out_i.append(ii)
        out_j.append(jj)
        out_s.append(shift)
    return torch.cat(out_i), torch.cat(out_j), torch.cat(out_s).round().long()


@torch.no_grad()
def neighbor_list(
    crystals: Crystals, cutoff: float, self_interaction: bool = False, method: str = "auto"
) -> NeighborList:
    """All directed pairs (i, j, image) with |r_ij| < cutoff (as ASE), for every image in range.

    Correct for cutoffs larger than the cell, skewed cells and atoms outside the cell.

    Args:
        crystals: the batch (any float dtype; pairs are found in float64).
        cutoff: radius in Å.
        self_interaction: keep the (i, i, 0) pair.
        method: ``per_crystal`` (one pass per crystal, on the CPU), ``batched`` (padded
            passes over many crystals at once, on the crystals' device) or ``auto``:
            batched on a GPU, or where padding wastes little (crystals of equal size and
            image reach, e.g. template starts of one target); both give the same pairs in
            the same order (BENCHMARKS.md: batched is 2.6× faster on alike crystals and
            up to 5× slower on mixed ones on a CPU).
    """
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    if method not in ("auto", "batched", "per_crystal"):
        raise ValueError(f"method must be auto, batched or per_crystal, got {method!r}")
    counts = crystals.n_atoms.tolist()
    device = crystals.positions.device
    cells = crystals.cell.detach().to(torch.float64)
    reach = _reach(cells, cutoff) if counts else torch.zeros(0, 3, dtype=torch.long)
    if method == "auto":
        method = "batched" if device.type != "cpu" or _alike(counts, reach) else "per_crystal"
    if method == "per_crystal":
        pos_all, cells = crystals.positions.detach().to("cpu", torch.float64), cells.cpu()
    else:
        pos_all = crystals.positions.detach().to(torch.float64)
    out_i, out_j, out_s = [], [], []
    for b0, b1, offset, batched in _chunks(counts, reach.tolist(), method == "batched"):
        if batched:
            r = reach[b0:b1].amax(0).tolist()
            i, j, s = _padded_pairs(pos_all, cells[b0:b1], counts[b0:b1], offset, r, cutoff,
                                    self_interaction)  # fmt: skip
        else:
            n = counts[b0]
            i, j, s = _crystal_pairs(pos_all[offset : offset + n], cells[b0], cutoff,
                                     self_interaction)  # fmt: skip
            i, j = i + offset, j + offset
        out_i.append(i.to(device))
        out_j.append(j.to(device))
        out_s.append(s.to(device))
    if not out_i:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return NeighborList(
            empty, empty.clone(), torch.zeros(0, 3, dtype=torch.long, device=device)
        )
    return NeighborList(torch.cat(out_i), torch.cat(out_j), torch.cat(out_s))


def _reach(cells: Tensor, cutoff: float) -> Tensor:
    """(B, 3) image reach per axis, as `_shift_grid` computes it for one cell."""
    inv, _ = torch.linalg.inv_ex(cells.cpu())  # a singular cell is refused later, by name
    recip_len = torch.nan_to_num(inv.norm(dim=1), nan=0.0, posinf=0.0)  # |b_k| per crystal
    return torch.floor(cutoff * recip_len + 0.5 + 1e-9).clamp(0, 10_000).long()


def _alike(counts: list[int], reach: Tensor) -> bool:
    """True when every crystal has the same atom count and image reach (no padding waste)."""
    return len(counts) > 1 and len(set(counts)) == 1 and bool((reach == reach[0]).all())


def _chunks(counts: list[int], reach: list[list[int]], batched: bool):
    """(first, end, atom offset, batched) of consecutive crystal groups: with ``batched``, as
    many crystals as fit `_MAX_CANDIDATES` padded candidates (a crystal too large on its own
    gets its own row-chunked per-crystal pass); else one crystal each."""
    b0, offset = 0, 0
    while b0 < len(counts):
        b1, m, r = b0, 0, [0, 0, 0]
        while batched and b1 < len(counts):
            m2, r2 = max(m, counts[b1]), [max(x, y) for x, y in zip(r, reach[b1], strict=True)]
            if (b1 - b0 + 1) * m2 * m2 * math.prod(2 * k + 1 for k in r2) > _MAX_CANDIDATES:
                break
            b1, m, r = b1 + 1, m2, r2
        end = max(b1, b0 + 1)
        yield b0, end, offset, b1 > b0
        offset += sum(counts[b0:end])
        b0 = end


def _padded_pairs(pos: Tensor, cells: Tensor, counts: list[int], offset: int,
                  reach: list[int], cutoff: float,
                  self_interaction: bool) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Global (i, j, shift) of crystals ``counts`` (their atoms start at ``offset`` in pos
    (N, 3)) in one padded pass over B × n_max² × images, on pos's device, in the order the
    per-crystal pass gives (by i, then j, then image)."""
    dev = pos.device
    volume = torch.linalg.det(cells).abs().tolist()
    for n, v in zip(counts, volume, strict=True):  # the per-crystal pass's refusals, first
        if v < 1e-12:
            raise ValueError("singular cell: lattice vectors are linearly dependent")
        reason = pair_budget_reason(n, v, cutoff)
        if reason is not None:
            raise ValueError(reason)
    axes = [torch.arange(-k, k + 1, dtype=torch.float64, device=dev) for k in reach]
    grid = torch.cartesian_prod(*axes).reshape(-1, 3)  # (M, 3)
    n_t = torch.tensor(counts, device=dev)
    starts = torch.cumsum(n_t, 0) - n_t + offset
    local = torch.arange(max(counts), device=dev)
    valid = local[None, :] < n_t[:, None]  # (B, n_max)
    index = (starts[:, None] + local[None, :]).clamp(max=pos.shape[0] - 1)
    frac = torch.einsum("bnk,bkl->bnl", pos[index], torch.linalg.inv(cells))
    dfrac = frac[:, None, :, :] - frac[:, :, None, :]  # (B, i, j, 3): f_j - f_i
    wrap = torch.round(dfrac)
    base = torch.einsum("bijk,bkl->bijl", dfrac - wrap, cells)
    vec = base[:, :, :, None, :] + torch.einsum("mk,bkl->bml", grid, cells)[:, None, None]
    keep = (vec * vec).sum(-1) < cutoff * cutoff  # (B, i, j, M)
    keep &= (valid[:, :, None] & valid[:, None, :])[..., None]
    bb, ii, jj, mm = keep.nonzero(as_tuple=True)
    shift = grid[mm] - wrap[bb, ii, jj]
    if not self_interaction:
        not_self = (ii != jj) | shift.abs().sum(-1).bool()
        bb, ii, jj, shift = bb[not_self], ii[not_self], jj[not_self], shift[not_self]
    return ii + starts[bb], jj + starts[bb], shift.round().long()


def pair_vectors(crystals: Crystals, nl: NeighborList, index: slice | None = None) -> Tensor:
    """(P, 3) vectors r_ij = pos[j] - pos[i] + shift @ cell in Å, differentiable in pos and cell.

    ``index`` restricts to a contiguous slice of the pairs (for chunked evaluation).
    """
    i, j, shifts = nl.i, nl.j, nl.shifts
    if index is not None:
        i, j, shifts = i[index], j[index], shifts[index]
    pos = crystals.positions
    cell = crystals.cell[crystals.batch[i]]  # (P, 3, 3)
    return pos[j] - pos[i] + torch.einsum("pk,pkl->pl", shifts.to(pos.dtype), cell)
