"""The paper's 1-D U-Net denoiser on R as a 1-channel signal (docs/method.md).

Initial conv (k = 7); per level two ResNet blocks (weight-standardised conv k = 3, GroupNorm(8),
SiLU, time-conditioned scale/shift) and a linear-attention block (4 heads); stride-2 down- and
up-sampling with skip connections; full attention in the middle; a final ResNet block and a 1×1
conv. R (B, D) is padded to a multiple of 2^(levels − 1) and the pad is stripped again.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from structrepdiff.diffusion.denoisers import DenoiserConfig, timestep_embedding


class WSConv1d(nn.Conv1d):
    """Conv1d with weight standardisation (zero mean, unit variance per output channel)."""

    def forward(self, x: Tensor) -> Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        w = self.weight
        mean = w.mean(dim=(1, 2), keepdim=True)
        var = w.var(dim=(1, 2), keepdim=True, unbiased=False)
        return F.conv1d(x, (w - mean) * (var + eps).rsqrt(), self.bias, self.stride,
                        self.padding)  # fmt: skip


class Block(nn.Module):
    def __init__(self, dim: int, dim_out: int, groups: int = 8):
        super().__init__()
        self.proj = WSConv1d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)

    def forward(self, x: Tensor, scale_shift: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return F.silu(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, dim_out: int, time_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, dim_out * 2))
        self.block1, self.block2 = Block(dim, dim_out), Block(dim_out, dim_out)
        self.res = nn.Conv1d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        scale_shift = self.mlp(temb)[..., None].chunk(2, dim=1)
        h = self.block2(self.block1(x, scale_shift))
        return h + self.res(x)


class LinearAttention(nn.Module):
    """Softmax-kernel linear attention over positions, pre-normed, with a residual."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.norm = nn.GroupNorm(1, dim)
        self.qkv = nn.Conv1d(dim, hidden * 3, 1, bias=False)
        self.out = nn.Sequential(nn.Conv1d(hidden, dim, 1), nn.GroupNorm(1, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, _, n = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, n) for t in self.qkv(self.norm(x)).chunk(3, 1))
        q, k = q.softmax(dim=-2) * self.scale, k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(b, -1, n)
        return x + self.out(out)


class Attention(nn.Module):
    """Full multi-head self-attention over positions, pre-normed, with a residual."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(1, dim)
        self.qkv = nn.Conv1d(dim, heads * dim_head * 3, 1, bias=False)
        self.out = nn.Conv1d(heads * dim_head, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, n = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, n).transpose(-1, -2)
                   for t in self.qkv(self.norm(x)).chunk(3, 1))  # fmt: skip
        out = F.scaled_dot_product_attention(q, k, v)  # (b, h, n, d)
        return x + self.out(out.transpose(-1, -2).reshape(b, -1, n))


class UNet1D(nn.Module):
    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        ch = cfg.channels
        dims = [ch, *(ch * m for m in cfg.mults)]
        pairs = list(itertools.pairwise(dims))
        self.levels = len(cfg.mults)
        tdim = 4 * ch
        self.time_dim = ch
        self.time = nn.Sequential(nn.Linear(ch, tdim), nn.GELU(), nn.Linear(tdim, tdim))
        self.init = nn.Conv1d(1, ch, 7, padding=3)
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for k, (d_in, d_out) in enumerate(pairs):
            last = k == len(pairs) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(d_in, d_in, tdim), ResnetBlock(d_in, d_in, tdim),
                LinearAttention(d_in),
                nn.Conv1d(d_in, d_out, 3, padding=1) if last else nn.Conv1d(d_in, d_out, 4, 2, 1),
            ]))  # fmt: skip
        mid = dims[-1]
        self.mid1, self.mid_attn = ResnetBlock(mid, mid, tdim), Attention(mid)
        self.mid2 = ResnetBlock(mid, mid, tdim)
        for k, (d_in, d_out) in enumerate(reversed(pairs)):
            last = k == len(pairs) - 1
            up = (nn.Conv1d(d_out, d_in, 3, padding=1) if last else
                  nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                nn.Conv1d(d_out, d_in, 3, padding=1)))  # fmt: skip
            self.ups.append(nn.ModuleList([
                ResnetBlock(d_out + d_in, d_out, tdim), ResnetBlock(d_out + d_in, d_out, tdim),
                LinearAttention(d_out), up,
            ]))  # fmt: skip
        self.final_res = ResnetBlock(2 * ch, ch, tdim)
        self.final = nn.Conv1d(ch, 1, 1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        D = x.shape[1]
        mult = 2 ** (self.levels - 1)
        h = F.pad(x, (0, (-D) % mult))[:, None]  # (B, 1, D_pad)
        temb = self.time(timestep_embedding(t, self.time_dim))
        h = self.init(h)
        r, skips = h.clone(), []
        for b1, b2, attn, down in self.downs:
            h = b1(h, temb)
            skips.append(h)
            h = attn(b2(h, temb))
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for b1, b2, attn, up in self.ups:
            h = b1(torch.cat([h, skips.pop()], 1), temb)
            h = attn(b2(torch.cat([h, skips.pop()], 1), temb))
            h = up(h)
        h = self.final_res(torch.cat([h, r], 1), temb)
        return self.final(h)[:, 0, :D]
