"""Denoisers: shapes for odd lengths, config round trip, and a tiny model that overfits."""

from __future__ import annotations

import pytest
import torch

from structrepdiff.diffusion.ddpm import GaussianDiffusion
from structrepdiff.diffusion.denoisers import DenoiserConfig, build_denoiser


@pytest.mark.parametrize("kind", ["mlp", "unet1d"])
@pytest.mark.parametrize("dim", [1, 13, 64, 609])
def test_output_shape_matches_input_for_any_length(kind: str, dim: int) -> None:
    cfg = DenoiserConfig(kind=kind, dim=dim, hidden=32, depth=2, channels=8, mults=(1, 2, 4))
    net = build_denoiser(cfg)
    x = torch.randn(3, dim)
    out = net(x, torch.tensor([0, 7, 1999]))
    assert out.shape == (3, dim) and torch.isfinite(out).all()


def test_config_round_trip_and_validation() -> None:
    cfg = DenoiserConfig(kind="unet1d", dim=697, channels=16, mults=(1, 2))
    assert DenoiserConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="kind"):
        DenoiserConfig(kind="transformer", dim=4)
    with pytest.raises(ValueError, match="dim"):
        DenoiserConfig(kind="mlp", dim=0)


@pytest.mark.parametrize(("kind", "steps"), [("mlp", 300), ("unet1d", 150)])
def test_tiny_model_overfits_a_handful_of_vectors(kind: str, steps: int) -> None:
    torch.manual_seed(0)
    diff = GaussianDiffusion(T=50)
    x0 = torch.randn(4, 24)
    cfg = DenoiserConfig(kind=kind, dim=24, hidden=128, depth=2, channels=8, mults=(1, 2))
    net = build_denoiser(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    t_all = torch.arange(50)

    def full_loss() -> float:
        with torch.no_grad():  # every (vector, t) pair with fixed noise
            x = x0.repeat(50, 1)
            t = t_all.repeat_interleave(4)
            noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
            return float(((net(diff.q_sample(x, t, noise), t) - noise) ** 2).mean())

    before = full_loss()
    for _ in range(steps):
        loss = diff.loss(net, x0.repeat(8, 1), g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = full_loss()
    assert after < 0.5 * before, (before, after)


def test_gaussian_skip_is_the_exact_gaussian_eps_at_start() -> None:
    """Fitted to samples of N(mu, cov), the wrapped net (zero last layer) returns the exact
    posterior-mean noise of the fitted Gaussian, checked against a linear solve."""
    from structrepdiff.diffusion.ddpm import GaussianDiffusion
    from structrepdiff.diffusion.denoisers import GaussianSkip

    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64)
    X = torch.randn(500, 4, generator=g, dtype=torch.float64) @ A.T + 1.5
    diff = GaussianDiffusion(T=100)
    net = build_denoiser(DenoiserConfig(kind="mlp", dim=4, hidden=16, depth=1,
                                        gaussian_skip=True, T=100))  # fmt: skip
    assert isinstance(net, GaussianSkip)
    net.fit(X, diff.alphas_cumprod)
    mu, cov = X.mean(0), torch.cov(X.T)
    x = torch.randn(8, 4, generator=g, dtype=torch.float64)
    for step in (0, 50, 99):
        t = torch.full((8,), step)
        ac = diff.alphas_cumprod[step]
        C = ac * cov + (1 - ac) * torch.eye(4, dtype=torch.float64)
        want = (1 - ac).sqrt() * torch.linalg.solve(C, (x - ac.sqrt() * mu).T).T
        got = net(x.float(), t).double()  # float32 network, float64 oracle
        assert torch.allclose(got, want, atol=2e-4 * want.abs().max()), (got - want).abs().max()
