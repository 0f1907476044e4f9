"""Batched, differentiable Embedded Atom Density (docs/method.md).

    f_c(d)      = 0.5 (cos(π d / R_c) + 1) for d < R_c, else 0
    T[o, e, s]  = Σ_j x^lx y^ly z^lz / sqrt(lx! ly! lz!) · exp(-η_e (d - Rs_s)²) · w_j · f_c(d)
    ρ[l, e, s]  = l! / R_c^(2l) · Σ_{o: lx+ly+lz <= l} T[o, e, s]²

Pairs come from the neighbour list (no gradient); vectors are recomputed from positions and cell,
so ρ is differentiable in both. Centre atoms are processed in chunks whose padded pair block stays
under a fixed element budget, so memory does not grow with R_c³ × batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from structrepdiff.descriptor.config import EADConfig
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.geometry.neighbors import NeighborList, neighbor_list, pair_vectors

DEFAULT_CHUNK_ELEMENTS = 1 << 20  # padded (atoms × pairs × radial) elements per chunk, CPU
# On a GPU memory is plentiful and every chunk costs ~100 kernel launches: 64× larger chunks
# keep a batch of ~1,000 crystals in one or two chunks (≈ 0.25 GiB per float32 block).
GPU_CHUNK_ELEMENTS = 1 << 26


@lru_cache(maxsize=4)
def orbitals(L: int) -> tuple[tuple[int, int, int], ...]:
    """Cartesian orbitals (lx, ly, lz) with lx+ly+lz <= L, ordered by total l."""
    return tuple(
        (lx, ly, l - lx - ly) for l in range(L + 1) for lx in range(l, -1, -1)
        for ly in range(l - lx, -1, -1)
    )  # fmt: skip


@dataclass
class AtomDescriptors:
    """Per-atom output: ``ead`` (N, F) and ``nearest`` (N,) nearest-neighbour distance in Å
    (inf when an atom has no neighbour within R_c)."""

    ead: Tensor
    nearest: Tensor


def _angular(r: Tensor, L: int) -> Tensor:
    """(P, n_orb) monomials x^lx y^ly z^lz / sqrt(lx! ly! lz!)."""
    cols = []
    for lx, ly, lz in orbitals(L):
        norm = 1.0 / math.sqrt(math.factorial(lx) * math.factorial(ly) * math.factorial(lz))
        cols.append(r[:, 0] ** lx * r[:, 1] ** ly * r[:, 2] ** lz * norm)
    return torch.stack(cols, dim=1)


def _chunks(counts: list[int], width: int, budget: int) -> list[tuple[int, int]]:
    """Contiguous atom ranges [a0, a1) whose padded block (atoms × max pairs × width) fits."""
    out, a0, kmax = [], 0, 0
    for a, c in enumerate(counts):
        k = max(kmax, c)
        if a > a0 and (a + 1 - a0) * k * width > budget:
            out.append((a0, a))
            a0, k = a, c
        kmax = k
    out.append((a0, len(counts)))
    return out


class Gaussians(torch.autograd.Function):
    """exp(-η (d - Rs)²) for d (n_a, K) and centres Rs (S,) -> (n_a, K, S), fused.

    Values below exp(-cap) are exactly 0 (their arguments are clamped first: exp is slow on
    subnormal results). The backward needs one pass: ∂g/∂d = -2η (d - Rs) g. Only first-order
    gradients are supported.
    """

    @staticmethod
    def forward(ctx, d: Tensor, rs: Tensor, eta: float, cap: float) -> Tensor:
        arg = (d[..., None] - rs).square_().mul_(eta)
        zero = arg >= cap
        gauss = arg.clamp_(max=cap).neg_().exp_().masked_fill_(zero, 0.0)
        ctx.save_for_backward(d, rs, gauss)
        ctx.eta = eta
        return gauss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        d, rs, gauss = ctx.saved_tensors
        grad_d = ((d[..., None] - rs).mul_(gauss).mul_(grad)).sum(-1).mul_(-2.0 * ctx.eta)
        return grad_d, None, None, None


def _underflow(dtype: torch.dtype) -> float:
    """x beyond which exp(-x) is treated as 0: 2 below the log of the smallest normal number.

    85.3 for float32, 706.4 for float64. exp is many times slower on arguments whose result
    is subnormal or zero, so arguments are clamped there and the result set to exactly 0.
    """
    return -math.log(torch.finfo(dtype).tiny) - 2.0


def _window(d: Tensor, eta: float, cfg: EADConfig) -> int:
    """Slots of the distance-sorted (n_a, K) block where exp(-η(d - Rs)²) can be non-zero.

    Beyond max(Rs) + sqrt(x_u/η) every Gaussian of width η is below the dtype's smallest normal
    number (x_u = `_underflow`), and Gaussians that small are set to exactly zero.
    """
    reach = max(cfg.rs) + math.sqrt(_underflow(d.dtype) / eta)
    return max(1, int((d.detach() < reach).sum(1).max()))


def _chunk_rho(
    crystals: Crystals,
    nl: NeighborList,
    cfg: EADConfig,
    atoms: tuple[int, int],
    pairs: tuple[int, int],
    starts: Tensor,
) -> tuple[Tensor, Tensor]:
    """ρ (n_a, F) and nearest distance (n_a,) for centre atoms [a0, a1) and their pairs.

    Pair vectors are scattered into a padded (n_a, K, 3) block first (pad = a vector beyond
    R_c, so its weight is exactly zero), and every per-pair quantity is computed in that layout.
    """
    a0, a1 = atoms
    dtype, dev = crystals.positions.dtype, crystals.positions.device
    sl = slice(*pairs)
    il = nl.i[sl] - a0
    slot = torch.arange(pairs[0], pairs[1], device=dev) - starts[nl.i[sl]]
    k = int(slot.max()) + 1 if slot.numel() else 1
    r = crystals.positions.new_zeros(a1 - a0, k, 3)
    r[..., 0] = 2.0 * cfg.cutoff
    r = r.index_put((il, slot), pair_vectors(crystals, nl, sl))
    z = torch.zeros(a1 - a0, k, dtype=dtype, device=dev)
    if cfg.weights == "atomic_number":
        z = z.index_put((il, slot), crystals.numbers[nl.j[sl]].to(dtype))
    else:
        z = z.index_put((il, slot), torch.ones_like(il, dtype=dtype))
    d = r.norm(dim=-1)  # (n_a, K)
    order = d.detach().argsort(dim=1)  # nearest first, so each η's window is a prefix
    d, z = d.gather(1, order), z.gather(1, order)
    r = r.gather(1, order[..., None].expand(-1, -1, 3))
    w = torch.where(d < cfg.cutoff, 0.5 * (torch.cos(math.pi / cfg.cutoff * d) + 1.0), 0.0) * z
    ang = _angular(r.reshape(-1, 3), cfg.L).reshape(a1 - a0, k, -1) * w[..., None]
    rs = torch.tensor(cfg.rs, dtype=dtype, device=dev)
    T, cap = [], _underflow(dtype)
    for eta in cfg.etas:
        k_e = _window(d, eta, cfg)
        gauss = Gaussians.apply(d[:, :k_e].contiguous(), rs, eta, cap)  # (n_a, k_e, |Rs|)
        T.append(torch.bmm(ang[:, :k_e].transpose(1, 2), gauss))  # (n_a, n_orb, |Rs|)
    T2 = torch.stack(T, dim=2).flatten(2) ** 2  # (n_a, n_orb, |η|·|Rs|), η-major
    rho, n_orb = [], 0
    for l in range(cfg.L + 1):
        n_orb += (l + 1) * (l + 2) // 2
        pref = cfg.scale * math.factorial(l) / cfg.cutoff ** (2 * l)
        rho.append(pref * T2[:, :n_orb].sum(1))
    nearest = torch.where(z > 0, d, math.inf).amin(dim=1)
    return torch.cat(rho, dim=1), nearest


def compute_ead(
    crystals: Crystals,
    cfg: EADConfig,
    nl: NeighborList | None = None,
    chunk_elements: int | None = None,
) -> AtomDescriptors:
    """Per-atom EAD of a batch: (N, (L+1)·|η|·|Rs|), order l-major, then η, then Rs.

    Args:
        crystals: batch in float32 or float64; gradients flow to positions and cell.
        cfg: descriptor settings.
        nl: precomputed neighbour list with cutoff >= cfg.cutoff (built here if None).
        chunk_elements: memory budget per chunk, in padded tensor elements (default
            `DEFAULT_CHUNK_ELEMENTS` on a CPU, `GPU_CHUNK_ELEMENTS` elsewhere).
    """
    if chunk_elements is None:
        on_cpu = crystals.positions.device.type == "cpu"
        chunk_elements = DEFAULT_CHUNK_ELEMENTS if on_cpu else GPU_CHUNK_ELEMENTS
    if nl is None:
        nl = neighbor_list(crystals, cfg.cutoff)
    n = crystals.positions.shape[0]
    counts_t = torch.bincount(nl.i, minlength=n)
    starts = torch.cumsum(counts_t, 0) - counts_t
    counts = counts_t.tolist()
    width = len(cfg.etas) * len(cfg.rs) + len(orbitals(cfg.L))
    rhos, nearest = [], []
    for a0, a1 in _chunks(counts, width, chunk_elements):
        p0, p1 = int(starts[a0]), int(starts[a1 - 1]) + counts[a1 - 1]
        rho, near = _chunk_rho(crystals, nl, cfg, (a0, a1), (p0, p1), starts)
        rhos.append(rho)
        nearest.append(near)
    return AtomDescriptors(torch.cat(rhos), torch.cat(nearest))
