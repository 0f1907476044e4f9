"""The structure model conditioned on composition and N: the exact Gaussian conditional,
classifier-free guidance, conditional training (resume), and the bundled composition model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from tests.test_train import REP, TINY, config, features  # noqa: F401  (fixture)

from structrepdiff.cli.main import main
from structrepdiff.composition.model import CompositionModel, CompositionModelConfig
from structrepdiff.composition.train import save_composition_model
from structrepdiff.diffusion.ddpm import GaussianDiffusion
from structrepdiff.diffusion.denoisers import DenoiserConfig, build_denoiser, guided
from structrepdiff.features import load_features
from structrepdiff.pipeline.checkpoint import LoadedModel, load_checkpoint
from structrepdiff.pipeline.sample import refine_vectors, sample_vectors
from structrepdiff.pipeline.train import train
from structrepdiff.representation.condition import composition_condition, condition_mask


def gaussian_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, 3) correlated with c (n, 2): x = A c + noise, so x | c is a known Gaussian."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, 2, generator=g, dtype=torch.float64)
    A = torch.tensor([[1.0, -0.5], [0.3, 0.8], [0.0, 0.4]], dtype=torch.float64)
    x = c @ A.T + 0.3 * torch.randn(n, 3, generator=g, dtype=torch.float64) + 0.5
    return x, c


def fitted_skip(T: int) -> torch.nn.Module:
    """A conditional GaussianSkip whose inner network outputs exactly zero (zero-init last
    layer), fitted to `gaussian_data`: its ε is the exact ε of the fitted Gaussian."""
    cfg = DenoiserConfig(kind="mlp", dim=3, hidden=16, depth=1, time_dim=8, gaussian_skip=True,
                         T=T, cond_dim=2)  # fmt: skip
    net = build_denoiser(cfg).double()
    x, c = gaussian_data(20_000)
    net.fit(x, GaussianDiffusion(T).alphas_cumprod, c)
    return net.eval()


def test_exact_gaussian_conditional_sampling_recovers_its_mean_and_covariance() -> None:
    T = 200
    net, diff = fitted_skip(T), GaussianDiffusion(T)
    x, c = gaussian_data(20_000)
    c0 = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    # the exact conditional of the fitted joint Gaussian, computed independently here
    joint = torch.cov(torch.cat([x, c], 1).T)
    sxc, scc = joint[:3, 3:], joint[3:, 3:]
    mean = x.mean(0) + (c0[0] - c.mean(0)) @ torch.linalg.solve(scc, sxc.T)
    cov = joint[:3, :3] - sxc @ torch.linalg.solve(scc, sxc.T)
    n = 4000
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        s = diff.sample_ddpm(guided(net, c0.expand(n, 2)), (n, 3), generator=g,
                             dtype=torch.float64)  # fmt: skip
    se = (cov.diagonal() / n).sqrt()
    assert torch.all((s.mean(0) - mean).abs() < 4 * se), (s.mean(0), mean)
    assert torch.allclose(torch.cov(s.T), cov, atol=0.1 * cov.diagonal().max())
    # the marginal (no condition) is different: its covariance holds the c-driven part too
    with torch.no_grad():
        m = diff.sample_ddpm(guided(net, c0.expand(n, 2), 0.0), (n, 3), generator=g,
                             dtype=torch.float64)  # fmt: skip
    marginal = torch.cov(x.T)
    assert torch.allclose(torch.cov(m.T), marginal, atol=0.1 * marginal.diagonal().max())
    assert not torch.allclose(marginal, cov, atol=0.1 * marginal.diagonal().max())
    assert torch.all((m.mean(0) - x.mean(0)).abs() < 4 * (x.var(0) / n).sqrt())


def test_guidance_scale_zero_is_the_unconditional_network_and_two_extrapolates() -> None:
    torch.manual_seed(0)
    cfg = DenoiserConfig(kind="mlp", dim=5, hidden=16, depth=2, time_dim=8, cond_dim=3)
    net = build_denoiser(cfg)
    for p in net.parameters():  # leave the zero init so that outputs are non-trivial
        torch.nn.init.normal_(p, std=0.3)
    x, t, c = torch.randn(4, 5), torch.tensor([0, 3, 7, 9]), torch.randn(4, 3)
    with torch.no_grad():
        u, k = net(x, t), net(x, t, c)
        dropped = net(x, t, c, torch.ones(4, dtype=torch.bool))
        assert torch.equal(guided(net, c, 0.0)(x, t), u)
        assert torch.equal(dropped, u)  # a dropped condition is the null condition
        assert torch.equal(guided(net, c, 1.0)(x, t), k)
        assert torch.allclose(guided(net, c, 2.0)(x, t), u + 2 * (k - u))
    assert not torch.allclose(u, k)
    with pytest.raises(ValueError, match="without a condition"):
        build_denoiser(replace(cfg, cond_dim=0))(x, t, c)
    with pytest.raises(ValueError, match="mlp denoiser only"):
        DenoiserConfig(kind="unet1d", dim=5, cond_dim=3)


def cond_config(out, feats, **kw):
    return config(out, feats, conditional=True,
                  denoiser=replace(TINY, gaussian_skip=True), **kw)  # fmt: skip


def test_conditional_training_resumes_exactly_and_samples_exact_compositions(
    tmp_path,
    features,  # noqa: F811
) -> None:
    straight = train(cond_config(tmp_path / "a", features))
    train(cond_config(tmp_path / "b", features, steps=3))
    resumed = train(cond_config(tmp_path / "b", features, steps=6, resume=True))
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for name, tensor in a["ema"].items():
        assert torch.equal(tensor, b["ema"][name]), name
    mask = condition_mask(REP)
    assert np.array_equal(b["conditional"]["mask"].numpy(), mask)
    model = LoadedModel.load(straight.checkpoint)
    assert model.conditional and model.denoiser_config.dim == int((~mask).sum())
    known = composition_condition(REP, ["NaCl", "Fe2O3", "Na2Cl2"], 6)
    R = sample_vectors(model, 6, steps=10, seed=3, known=known, guidance=2.0)
    assert R.shape == (6, REP.layout.dim) and np.isfinite(R).all()
    assert np.allclose(R[:, mask], known[1][:, mask])  # CSP: exactly the requested composition
    assert not np.allclose(R[0, ~mask], R[3, ~mask])  # same formula, different structures
    again = sample_vectors(model, 6, steps=10, seed=3, known=known, guidance=2.0)
    assert np.array_equal(R, again)
    with pytest.raises(ValueError, match="no composition model"):
        sample_vectors(model, 2, steps=5)
    with pytest.raises(ValueError, match="other settings"):
        train(cond_config(tmp_path / "b", features, steps=8, cond_dropout=0.3, resume=True))


def composition_file(path, atomic_numbers, n_max):
    torch.manual_seed(0)
    model = CompositionModel(CompositionModelConfig(tuple(atomic_numbers), n_max, 8, 16, 1))
    save_composition_model(model.eval(), {"note": "untrained"}, path)
    return path


def test_exported_checkpoint_bundles_the_composition_model_and_refuses_a_mismatch(
    tmp_path,
    features,  # noqa: F811
) -> None:
    run = train(cond_config(tmp_path / "run", features)).checkpoint
    comp = composition_file(tmp_path / "comp.pt", REP.atomic_numbers, REP.n_max)
    out = tmp_path / "bundle.pt"
    assert main(["export", "--model", str(run), "--out", str(out),
                 "--composition-model", str(comp)]) == 0  # fmt: skip
    bundled = torch.load(out, weights_only=True)["composition"]
    assert bundled["format"] == "structrepdiff-composition"
    samples = tmp_path / "s.npz"
    assert main(["sample", "--model", str(out), "--num", "7", "--out", str(samples),
                 "--steps", "5", "--no-progress"]) == 0  # fmt: skip
    R = load_features(samples).R
    n = np.rint(R[:, REP.layout.slices["n_atoms"]][:, 0] * REP.n_max)
    counts = R[:, REP.layout.slices["composition"]] * n[:, None]
    assert np.allclose(counts, np.rint(counts), atol=1e-6) and (n >= 1).all()
    assert (n <= REP.n_max).all()
    wrong = composition_file(tmp_path / "wrong.pt", (8, 11, 17), REP.n_max)
    assert main(["export", "--model", str(run), "--out", str(tmp_path / "x.pt"),
                 "--composition-model", str(wrong)]) == 2  # fmt: skip
    plain = train(config(tmp_path / "plain", features)).checkpoint
    assert main(["export", "--model", str(plain), "--out", str(tmp_path / "y.pt"),
                 "--composition-model", str(comp)]) == 2  # fmt: skip
    with pytest.raises(ValueError, match="guidance needs a conditional model"):
        sample_vectors(LoadedModel.load(plain), 2, steps=5, guidance=2.0)


def test_ddim_from_a_start_at_the_last_step_is_the_full_sampler() -> None:
    diff = GaussianDiffusion(50)
    net = lambda x, t: 0.3 * x  # noqa: E731  (any fixed denoiser)
    g = torch.Generator().manual_seed(0)
    full = diff.sample_ddim(net, (4, 3), steps=10, generator=g)
    x = torch.randn((4, 3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(diff.sample_ddim(net, (4, 3), steps=10, start=(x, 49)), full)
    with pytest.raises(ValueError, match="start step"):
        diff.sample_ddim(net, (4, 3), steps=10, start=(x, 50))


def test_refining_keeps_the_composition_and_barely_moves_at_step_zero(
    tmp_path,
    features,  # noqa: F811
) -> None:
    model = LoadedModel.load(train(cond_config(tmp_path / "run", features)).checkpoint)
    R = load_features(features).R[:5]
    mask = model.cond_mask
    near = refine_vectors(model, R, 0, steps=10, seed=1)
    far = refine_vectors(model, R, 15, steps=10, seed=1)
    assert np.allclose(near[:, mask], R[:, mask]) and np.allclose(far[:, mask], R[:, mask])
    z, zn, zf = (np.asarray(model.scaler.transform(v))[:, ~mask] for v in (R, near, far))
    s0 = float((1 - model.diffusion.alphas_cumprod[0]).sqrt())  # noise scale at step 0
    assert np.abs(zn - z).max() < 10 * s0 < np.abs(zf - z).max()  # scaled units
    assert np.array_equal(refine_vectors(model, R, 0, steps=10, seed=1), near)
    with pytest.raises(ValueError, match="start step"):
        refine_vectors(model, R, 20, steps=10)  # T = 20 in the tiny config
