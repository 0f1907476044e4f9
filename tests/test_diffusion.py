"""DDPM core: schedule, forward process, and both samplers against an exact Gaussian denoiser."""

from __future__ import annotations

import math

import pytest
import torch

from structrepdiff.diffusion.ddpm import GaussianDiffusion, cosine_betas


def test_cosine_schedule_matches_its_formula() -> None:
    T, s = 2000, 0.008
    betas = cosine_betas(T, s)
    assert betas.shape == (T,) and betas.dtype == torch.float64
    assert float(betas.max()) <= 0.999 and float(betas.min()) > 0
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    ac = torch.cumprod(1 - betas, 0)
    for t in (0, 10, 999, 1500):  # ᾱ_t = f(t + 1) / f(0) wherever β is not clipped
        assert math.isclose(float(ac[t]), f(t + 1) / f(0), rel_tol=1e-9)
    assert float(ac[-1]) < 1e-6  # the last step is (nearly) pure noise


def test_q_sample_has_the_forward_marginal() -> None:
    diff = GaussianDiffusion(T=100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 2), 3.0, dtype=torch.float64)
    t = torch.full((20000,), 40, dtype=torch.long)
    xt = diff.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    ac = float(diff.alphas_cumprod[40])
    assert torch.allclose(
        xt.mean(0), torch.full((2,), 3.0 * math.sqrt(ac), dtype=torch.float64), atol=0.03
    )
    assert torch.allclose(xt.var(0), torch.full((2,), 1 - ac, dtype=torch.float64), atol=0.03)


def gaussian_eps(diff: GaussianDiffusion, mu: torch.Tensor, cov: torch.Tensor):
    """The exact ε-predictor for data ~ N(mu, cov): E[ε | x_t] = √(1-ᾱ) C_t⁻¹ (x_t - √ᾱ mu)."""

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ac = diff.alphas_cumprod[t[0]].to(x.dtype)
        C = ac * cov + (1 - ac) * torch.eye(len(mu), dtype=x.dtype)
        return (1 - ac).sqrt() * torch.linalg.solve(C, (x - ac.sqrt() * mu).T).T

    return model


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_recover_a_known_gaussian(sampler: str) -> None:
    diff = GaussianDiffusion(T=400)
    mu = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    A = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.5, 0.0], [-0.3, 0.2, 0.3]], dtype=torch.float64)
    cov = A @ A.T
    model = gaussian_eps(diff, mu, cov)
    g = torch.Generator().manual_seed(1)
    n = 6000
    if sampler == "ddpm":
        x = diff.sample_ddpm(model, (n, 3), generator=g, dtype=torch.float64)
    else:
        x = diff.sample_ddim(model, (n, 3), steps=100, generator=g, dtype=torch.float64)
    assert torch.allclose(x.mean(0), mu, atol=0.05), x.mean(0)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.06), torch.cov(x.T)


def test_ddim_is_deterministic_and_validates_steps() -> None:
    diff = GaussianDiffusion(T=50)
    model = gaussian_eps(
        diff, torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    )
    a = diff.sample_ddim(model, (4, 2), 10, generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64)  # fmt: skip
    b = diff.sample_ddim(model, (4, 2), 10, generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64)  # fmt: skip
    assert torch.equal(a, b)
    assert diff.ddim_times(50) == list(range(49, -1, -1))
    with pytest.raises(ValueError, match="steps"):
        diff.ddim_times(0)


def test_loss_is_zero_for_the_true_noise_and_positive_otherwise() -> None:
    diff = GaussianDiffusion(T=10)
    x0 = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))

    def oracle(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # knows x0: returns the noise
        ac = diff.alphas_cumprod[t].float()[:, None]
        return (x - ac.sqrt() * x0) / (1 - ac).sqrt()

    assert float(diff.loss(oracle, x0, torch.Generator().manual_seed(2))) < 1e-8
    zero = diff.loss(lambda x, t: torch.zeros_like(x), x0, torch.Generator().manual_seed(2))
    assert 0.3 < float(zero) < 2.0  # E‖ε‖² / D = 1


def test_weighted_loss_weighs_each_features_squared_error() -> None:
    diff = GaussianDiffusion(T=10)
    x0 = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))

    def off_in_last(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # the true noise, + 1 in
        ac = diff.alphas_cumprod[t].float()[:, None]  # the last feature
        return (x - ac.sqrt() * x0) / (1 - ac).sqrt() + torch.tensor([0.0, 0.0, 0.0, 1.0])

    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert float(diff.loss(off_in_last, x0, g())) == pytest.approx(1 / 4, rel=1e-5)
    w = torch.tensor([0.5, 0.5, 0.5, 2.5])
    assert float(diff.loss(off_in_last, x0, g(), w)) == pytest.approx(2.5 / 4, rel=1e-5)


def test_feature_weights_put_the_composition_block_above_the_rest() -> None:
    from structrepdiff.pipeline.train import feature_weights

    slices = {"ead": slice(0, 6), "composition": slice(6, 8)}
    assert feature_weights(slices, 8, 1.0) is None
    w = feature_weights(slices, 8, 5.0)
    assert float(w.mean()) == pytest.approx(1.0)
    assert float(w[6] / w[0]) == pytest.approx(5.0) and torch.all(w[6:] == w[6])


def test_clip_keeps_ddim_in_bounds_where_a_small_eps_error_diverges() -> None:
    """ε off by 0.05 everywhere: near t = T the 1/√ᾱ factor (4e4) blows x̂_0 up unless clamped."""
    diff = GaussianDiffusion(T=2000)

    def biased(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x + 0.05

    lo, hi = torch.full((3,), -2.0), torch.full((3,), 2.0)
    gen = [torch.Generator().manual_seed(0) for _ in range(2)]
    free = diff.sample_ddim(biased, (64, 3), steps=50, generator=gen[0])
    held = diff.sample_ddim(biased, (64, 3), steps=50, generator=gen[1], clip=(lo, hi))
    assert free.abs().max() > 10.0
    assert held.min() >= -2.0 - 1e-5 and held.max() <= 2.0 + 1e-5


def test_clip_bounds_ddpm_output_of_a_wild_denoiser() -> None:
    diff = GaussianDiffusion(T=500)
    lo, hi = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])  # second feature is constant
    x = diff.sample_ddpm(lambda x, t: 3 * x, (32, 2), generator=torch.Generator().manual_seed(0),
                         clip=(lo, hi))  # fmt: skip
    assert x[:, 0].abs().max() <= 1.0 + 1e-5 and x[:, 1].abs().max() <= 1e-5
