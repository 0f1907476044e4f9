"""DDPM with ε-prediction, cosine schedule, ancestral and DDIM sampling (docs/method.md).

Equations (Ho et al. 2020; Nichol & Dhariwal 2021; Song et al. 2021), with ᾱ_t = Π_{s≤t} α_s:

    q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)                       (q_sample)
    loss = E ‖ε − ε_θ(x_t, t)‖²                                   (loss)
    x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ) / √ᾱ_t
    ancestral: x_{t−1} ~ N(c1 x̂_0 + c2 x_t, β̃_t I)               (sample_ddpm)
    DDIM (η = 0): x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s) ε_θ                  (sample_ddim)

Time steps are 0-based: t = 0 is the first noising step, t = T − 1 the last.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (x (B, D), t (B,) long) -> ε (B, D)
Bounds = tuple[Tensor, Tensor]  # per-feature (lo (D,), hi (D,)) for x̂_0
Known = tuple[Tensor, Tensor]  # (mask (D,) bool, values (B, D)): features fixed in x̂_0


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """(T,) float64 β_t of the cosine schedule: ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2)."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


class GaussianDiffusion(nn.Module):
    """Schedule buffers (float64 for accuracy, cast on use), forward process, loss, samplers."""

    def __init__(self, T: int = 2000, s: float = 0.008, max_beta: float = 0.999):
        super().__init__()
        if T < 1:
            raise ValueError("T must be at least 1")
        self.T, self.s, self.max_beta = T, s, max_beta
        betas = cosine_betas(T, s, max_beta)
        ac = torch.cumprod(1 - betas, 0)
        ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas_cumprod", ac, persistent=False)
        self.register_buffer("alphas_cumprod_prev", ac_prev, persistent=False)
        self.register_buffer("posterior_variance", betas * (1 - ac_prev) / (1 - ac),
                             persistent=False)  # fmt: skip
        self.register_buffer("coef_x0", betas * ac_prev.sqrt() / (1 - ac), persistent=False)
        self.register_buffer("coef_xt", (1 - ac_prev) * (1 - betas).sqrt() / (1 - ac),
                             persistent=False)  # fmt: skip

    def config(self) -> dict:
        return {"T": self.T, "s": self.s, "max_beta": self.max_beta}

    @staticmethod
    def _at(buf: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """buf[t] as (B, 1, ...) in like's dtype."""
        return buf[t].to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t (B, D) = √ᾱ_t x_0 + √(1 − ᾱ_t) ε."""
        ac = self._at(self.alphas_cumprod, t, x0)
        return ac.sqrt() * x0 + (1 - ac).sqrt() * noise

    def loss(self, model: Denoiser, x0: Tensor, generator: torch.Generator | None = None,
             weight: Tensor | None = None, time_weight: Tensor | None = None
             ) -> Tensor:  # fmt: skip
        """Mean squared error of the ε prediction at uniformly drawn t; ``weight`` (D,), if
        given, weighs each feature's squared error (mean of weight · error²); ``time_weight``
        (T,) weighs each time step's (e.g. `min_snr_weights`)."""
        dev = generator.device if generator is not None else x0.device
        t = torch.randint(0, self.T, (x0.shape[0],), generator=generator, device=dev)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=dev)
        t, noise = t.to(x0.device), noise.to(x0.device)
        err = (model(self.q_sample(x0, t, noise), t) - noise) ** 2
        if weight is not None:
            err = err * weight.to(err)
        if time_weight is not None:
            err = err * self._at(time_weight, t, err)
        return torch.mean(err)

    def min_snr_weights(self, gamma: float) -> Tensor:
        """(T,) min-SNR-γ weights for ε-prediction (Hang et al. 2023): min(SNR_t, γ) / SNR_t,
        SNR_t = ᾱ_t / (1 − ᾱ_t); 1 at noisy steps, small where the noise is tiny."""
        if gamma <= 0:
            raise ValueError("min-SNR gamma must be positive")
        snr = self.alphas_cumprod / (1 - self.alphas_cumprod)
        return snr.clamp(max=gamma) / snr

    def predict_x0(self, model: Denoiser, x: Tensor, t: Tensor, clip: Bounds | None = None,
                   known: Known | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
        """(x̂_0, ε) at x_t. With ``clip`` = (lo, hi), each (D,), x̂_0 is clamped to them; with
        ``known`` = (mask, values) the masked features of x̂_0 are set to the values
        (conditioning by replacement). ε is then recomputed from the changed x̂_0, so DDIM
        and ancestral steps move the known features along their exact noising path."""
        eps = model(x, t)
        ac = self._at(self.alphas_cumprod, t, x)
        x0 = (x - (1 - ac).sqrt() * eps) / ac.sqrt()
        if clip is None and known is None:
            return x0, eps
        if clip is not None:
            x0 = torch.maximum(torch.minimum(x0, clip[1].to(x0)), clip[0].to(x0))
        if known is not None:
            x0 = torch.where(known[0].to(x0.device), known[1].to(x0), x0)
        return x0, (x - ac.sqrt() * x0) / (1 - ac).sqrt()

    @torch.no_grad()
    def sample_ddpm(self, model: Denoiser, shape: tuple[int, ...],
                    generator: torch.Generator | None = None, device=None,
                    dtype: torch.dtype = torch.float32, clip: Bounds | None = None,
                    known: Known | None = None) -> Tensor:  # fmt: skip
        """Ancestral sampling over all T steps, from x_{T-1} ~ N(0, I); ``clip`` and
        ``known`` as in `predict_x0`."""
        x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        for step in reversed(range(self.T)):
            t = torch.full((shape[0],), step, device=x.device, dtype=torch.long)
            x0, _ = self.predict_x0(model, x, t, clip, known)
            mean = self._at(self.coef_x0, t, x) * x0 + self._at(self.coef_xt, t, x) * x
            if step > 0:
                z = torch.randn(shape, generator=generator, device=x.device, dtype=dtype)
                x = mean + self._at(self.posterior_variance, t, x).sqrt() * z
            else:
                x = mean
        return x

    def ddim_times(self, steps: int) -> list[int]:
        """``steps`` time steps from T − 1 down to 0, evenly spaced."""
        if not 1 <= steps <= self.T:
            raise ValueError(f"steps must be in 1..{self.T}, got {steps}")
        return sorted({round(v) for v in torch.linspace(0, self.T - 1, steps).tolist()},
                      reverse=True)  # fmt: skip

    @torch.no_grad()
    def sample_ddim(self, model: Denoiser, shape: tuple[int, ...], steps: int = 100,
                    eta: float = 0.0, generator: torch.Generator | None = None, device=None,
                    dtype: torch.dtype = torch.float32, clip: Bounds | None = None,
                    known: Known | None = None, start: tuple[Tensor, int] | None = None
                    ) -> Tensor:  # fmt: skip
        """DDIM over ``steps`` time steps; eta = 0 is deterministic given the start noise;
        ``clip`` and ``known`` as in `predict_x0`. ``start`` = (x_t (B, D), t) begins at step
        t from x_t instead of pure noise (SDEdit), visiting the DDIM steps below t."""
        if start is None:
            x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
            times = self.ddim_times(steps)
        else:
            x, t0 = start[0].to(dtype), int(start[1])
            if not 0 <= t0 < self.T:
                raise ValueError(f"start step must be in 0..{self.T - 1}, got {t0}")
            times = [t0] + [v for v in self.ddim_times(steps) if v < t0]
        for k, step in enumerate(times):
            t = torch.full((shape[0],), step, device=x.device, dtype=torch.long)
            x0, eps = self.predict_x0(model, x, t, clip, known)
            if k + 1 == len(times):
                return x0
            ac_t = self._at(self.alphas_cumprod, t, x)
            ac_s = self._at(self.alphas_cumprod, torch.full_like(t, times[k + 1]), x)
            sigma = eta * ((1 - ac_s) / (1 - ac_t) * (1 - ac_t / ac_s)).sqrt()
            x = ac_s.sqrt() * x0 + (1 - ac_s - sigma**2).clamp(min=0).sqrt() * eps
            if eta > 0:
                x = x + sigma * torch.randn(shape, generator=generator, device=x.device,
                                            dtype=dtype)  # fmt: skip
        return x
