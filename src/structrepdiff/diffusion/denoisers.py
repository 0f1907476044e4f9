"""Denoisers ε_θ(x_t, t[, c]) for vectors x (B, D): a residual MLP and the paper's 1-D U-Net.

Both take x (B, D) and integer time steps t (B,) and return ε̂ (B, D); pick one with
`DenoiserConfig.kind` and build it with `build_denoiser`. With ``cond_dim > 0`` the MLP also
takes a condition c (B, cond_dim) that is not diffused (composition and N for the structure
model) and a boolean ``drop`` (B,) that replaces c by a learned null embedding: trained with
random drops, one network gives both ε(x, t, c) and ε(x, t, ∅) for classifier-free guidance
(`guided`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KINDS = ("mlp", "unet1d")


@dataclass(frozen=True)
class DenoiserConfig:
    """Network settings. ``dim`` is the length of R.

    mlp: ``hidden`` width, ``depth`` residual blocks. unet1d: ``channels`` at the first level,
    multiplied by ``mults`` per level, 2 ResNet blocks per level (docs/method.md).
    ``gaussian_skip``: the network learns a correction to the exact ε-predictor of a Gaussian
    fitted to the training vectors (see `GaussianSkip`); ``T`` is the schedule length it needs.
    """

    kind: str = "mlp"
    dim: int = 0
    hidden: int = 1024
    depth: int = 4
    time_dim: int = 128
    dropout: float = 0.0
    channels: int = 64
    mults: tuple[int, ...] = (1, 2, 4, 8)
    gaussian_skip: bool = False
    T: int = 2000
    cond_dim: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"denoiser kind must be one of {KINDS}, got {self.kind!r}")
        if self.dim < 1:
            raise ValueError("dim (length of R) must be positive")
        if self.cond_dim < 0 or (self.cond_dim and self.kind != "mlp"):
            raise ValueError("a condition (cond_dim > 0) is supported by the mlp denoiser only")
        object.__setattr__(self, "mults", tuple(int(m) for m in self.mults))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mults"] = list(self.mults)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DenoiserConfig:
        return cls(**{**d, "mults": tuple(d.get("mults", (1, 2, 4, 8)))})


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """(B, dim) sinusoidal embedding of integer steps t (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=1)
    return F.pad(emb, (0, dim - 2 * half))


class TimeMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, 4 * dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.net(timestep_embedding(t, self.dim).to(self.net[0].weight.dtype))


class ResidualBlock(nn.Module):
    """h + W2 · drop(SiLU(W1 · FiLM_t(LayerNorm(h))))."""

    def __init__(self, width: int, tdim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.film = nn.Linear(tdim, 2 * width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        scale, shift = self.film(temb).chunk(2, dim=-1)
        x = self.norm(h) * (1 + scale) + shift
        return h + self.fc2(self.drop(F.silu(self.fc1(x))))


class MLPDenoiser(nn.Module):
    """Residual MLP over the whole vector, time-conditioned by FiLM: the CPU-practical choice."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.time = TimeMLP(cfg.time_dim)
        self.inp = nn.Linear(cfg.dim, cfg.hidden)
        self.blocks = nn.ModuleList(
            ResidualBlock(cfg.hidden, 4 * cfg.time_dim, cfg.dropout) for _ in range(cfg.depth)
        )
        self.out_norm = nn.LayerNorm(cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.cond_dim = cfg.cond_dim
        if cfg.cond_dim:
            e = 4 * cfg.time_dim
            self.cond = nn.Sequential(nn.Linear(cfg.cond_dim, e), nn.SiLU(), nn.Linear(e, e))
            self.null = nn.Parameter(torch.zeros(e))

    def embed(self, t: Tensor, c: Tensor | None, drop: Tensor | None) -> Tensor:
        """(B, 4·time_dim): time embedding plus the condition's (or the null) embedding."""
        temb = self.time(t)
        if not self.cond_dim:
            if c is not None:
                raise ValueError("this denoiser was built without a condition (cond_dim = 0)")
            return temb
        if c is None:
            return temb + self.null
        ce = self.cond(c.to(temb))
        if drop is not None:
            ce = torch.where(drop[:, None], self.null.to(ce), ce)
        return temb + ce

    def forward(self, x: Tensor, t: Tensor, c: Tensor | None = None,
                drop: Tensor | None = None) -> Tensor:  # fmt: skip
        temb = F.silu(self.embed(t, c, drop))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(F.silu(self.out_norm(h)))


class GaussianSkip(nn.Module):
    """ε̂(x, t) = ε_G(x, t) + net(x, t), where ε_G is the exact posterior mean of the noise when
    x_0 ~ N(μ, Σ) is the Gaussian fitted to the (scaled) training vectors:

        ε_G(x_t, t) = s U diag(1 / (a² λ + s²)) Uᵀ (x_t − a μ),   a = √ᾱ_t, s = √(1 − ᾱ_t),

    with Σ = U diag(λ) Uᵀ. The inner network's last layer starts at zero, so training starts
    from the Gaussian sampler and learns only what is not Gaussian. Buffers: mu (D,), U (D, D),
    lam (D,), alphas_cumprod (T,); set them with `fit`.

    With ``cond_dim`` > 0, `fit` also takes the conditions C (n, cond_dim) and stores the exact
    Gaussian conditional x_0 | c ~ N(μ + K (c − μ_c), Σ − K Σ_cx), K = Σ_xc Σ_cc⁺ (buffers K,
    mu_c, Uc, lamc); rows with a condition use it, rows without (c None or dropped) the
    marginal.
    """

    def __init__(self, inner: nn.Module, dim: int, T: int, cond_dim: int = 0):
        super().__init__()
        self.inner, self.cond_dim = inner, cond_dim
        self.register_buffer("mu", torch.zeros(dim))
        self.register_buffer("U", torch.eye(dim))
        self.register_buffer("lam", torch.ones(dim))
        self.register_buffer("alphas_cumprod", torch.ones(T))
        if cond_dim:
            self.register_buffer("K", torch.zeros(dim, cond_dim))
            self.register_buffer("mu_c", torch.zeros(cond_dim))
            self.register_buffer("Uc", torch.eye(dim))
            self.register_buffer("lamc", torch.ones(dim))

    @torch.no_grad()
    def fit(self, X: Tensor, alphas_cumprod: Tensor, C: Tensor | None = None) -> None:
        """X (n, D) scaled training vectors; alphas_cumprod (T,) of the diffusion; C (n,
        cond_dim) their conditions when the model is conditional."""
        X = X.double()
        lam, U = torch.linalg.eigh(torch.cov(X.T))
        self.mu.copy_(X.mean(0))
        self.U.copy_(U)
        self.lam.copy_(lam.clamp(min=0))
        self.alphas_cumprod.copy_(alphas_cumprod)
        if not self.cond_dim:
            return
        if C is None or C.shape != (X.shape[0], self.cond_dim):
            raise ValueError(f"a conditional Gaussian needs conditions of shape "
                             f"({X.shape[0]}, {self.cond_dim})")  # fmt: skip
        C = C.double()
        joint = torch.cov(torch.cat([X, C], 1).T)
        d = X.shape[1]
        sxc, scc = joint[:d, d:], joint[d:, d:]
        K = sxc @ torch.linalg.pinv(scc, hermitian=True)
        lamc, Uc = torch.linalg.eigh(joint[:d, :d] - K @ sxc.T)
        self.K.copy_(K)
        self.mu_c.copy_(C.mean(0))
        self.Uc.copy_(Uc)
        self.lamc.copy_(lamc.clamp(min=0))

    @staticmethod
    def _eps(x: Tensor, ac: Tensor, mu: Tensor, U: Tensor, lam: Tensor) -> Tensor:
        a, s = ac.sqrt(), (1 - ac).sqrt()
        y = (x - a * mu) @ U
        return (s * y / (ac * lam + s * s)) @ U.T

    def gaussian_eps(self, x: Tensor, t: Tensor, c: Tensor | None = None,
                     drop: Tensor | None = None) -> Tensor:  # fmt: skip
        """(B, D) exact ε of the fitted (conditional, where c is given) Gaussian."""
        ac = self.alphas_cumprod[t].to(x.dtype)[:, None]
        marginal = self._eps(x, ac, self.mu, self.U, self.lam)
        if not self.cond_dim or c is None:
            return marginal
        mean = self.mu + (c.to(x.dtype) - self.mu_c) @ self.K.T
        cond = self._eps(x, ac, mean, self.Uc, self.lamc)
        return cond if drop is None else torch.where(drop[:, None], marginal, cond)

    def forward(self, x: Tensor, t: Tensor, c: Tensor | None = None,
                drop: Tensor | None = None) -> Tensor:  # fmt: skip
        if not self.cond_dim:
            if c is not None:
                raise ValueError("this denoiser was built without a condition (cond_dim = 0)")
            return self.gaussian_eps(x, t) + self.inner(x, t)
        return self.gaussian_eps(x, t, c, drop) + self.inner(x, t, c, drop)


def guided(net: nn.Module, c: Tensor, scale: float = 1.0):
    """Denoiser closure (x, t) -> ε for condition c (B, cond_dim) with classifier-free
    guidance: ε = ε(x, t, ∅) + scale · (ε(x, t, c) − ε(x, t, ∅)). Scale 0 is the unconditional
    model, 1 the conditional one (one network pass each); other scales take two passes."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        if scale == 0.0:
            return net(x, t)
        cond = net(x, t, c)
        if scale == 1.0:
            return cond
        uncond = net(x, t)
        return uncond + scale * (cond - uncond)

    return model


def build_denoiser(cfg: DenoiserConfig) -> nn.Module:
    """The network named by ``cfg.kind``, wrapped in `GaussianSkip` if ``cfg.gaussian_skip``."""
    if cfg.kind == "mlp":
        net: nn.Module = MLPDenoiser(cfg)
    else:
        from structrepdiff.diffusion.unet1d import UNet1D

        net = UNet1D(cfg)
    return GaussianSkip(net, cfg.dim, cfg.T, cfg.cond_dim) if cfg.gaussian_skip else net
