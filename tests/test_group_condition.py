"""The space-group condition of the structure model (issue 26, deliverable 4): the condition
columns, the exact Gaussian conditional per group, training, resume and sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.test_conditional import cond_config
from tests.test_train import REP, config, features  # noqa: F401  (fixture)

from structrepdiff.diffusion.ddpm import GaussianDiffusion
from structrepdiff.diffusion.denoisers import DenoiserConfig, build_denoiser
from structrepdiff.pipeline.checkpoint import LoadedModel, load_checkpoint
from structrepdiff.pipeline.sample import refine_vectors, sample_vectors
from structrepdiff.pipeline.train import train
from structrepdiff.representation.condition import (
    GROUP_DIM,
    composition_condition,
    condition_mask,
    group_features,
)


def test_group_features_are_one_hot_group_and_crystal_system() -> None:
    f = group_features([0, 1, 2, 3, 221, 225, 194])
    assert f.shape == (7, GROUP_DIM) and np.all(f.sum(1) == 2)
    assert f[0, 0] == 1 and f[0, 231] == 1  # unknown group, unknown system
    assert f[4, 221] == 1 and f[5, 225] == 1
    systems = f[:, 231:].argmax(1)
    assert list(systems) == [0, 1, 1, 2, 7, 7, 6]  # triclinic 1-2, monoclinic 3, cubic, hex
    with pytest.raises(ValueError, match="231 is not in 1–230"):
        group_features([5, 231])


def test_gaussian_skip_conditional_on_a_one_hot_group_is_the_group_mean() -> None:
    """With the group as a one-hot condition the fitted conditional mean is each group's own
    mean (linear regression on indicators), and "unknown" rows give the overall mean."""
    g = torch.Generator().manual_seed(0)
    groups = torch.randint(1, 4, (3000,), generator=g).numpy() * 50  # groups 50, 100, 150
    means = {50: [1.0, -1.0], 100: [0.0, 2.0], 150: [-2.0, 0.5]}
    x = torch.tensor([means[int(k)] for k in groups], dtype=torch.float64)
    x += 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    C = torch.as_tensor(group_features(groups), dtype=torch.float64)
    unknown = torch.as_tensor(group_features(np.zeros(len(x), int)), dtype=torch.float64)
    cfg = DenoiserConfig(kind="mlp", dim=2, hidden=8, depth=1, time_dim=8, gaussian_skip=True,
                         T=50, cond_dim=GROUP_DIM)  # fmt: skip
    net = build_denoiser(cfg).double()
    net.fit(torch.cat([x, x]), GaussianDiffusion(50).alphas_cumprod, torch.cat([C, unknown]))
    for k in means:
        c = torch.as_tensor(group_features([k]), dtype=torch.float64)
        pred = net.mu + (c[0] - net.mu_c) @ net.K.T
        assert torch.allclose(pred, x[groups == k].mean(0), atol=1e-6)
    pred = net.mu + (unknown[0] - net.mu_c) @ net.K.T
    assert torch.allclose(pred, x.mean(0), atol=1e-6)


def test_group_conditioned_training_resumes_and_samples_given_groups(
    tmp_path,
    features,  # noqa: F811
) -> None:
    table = tmp_path / "groups.json"
    table.write_text(json.dumps({f"c{k}": [221, 225, 62, 14][k % 4] for k in range(11)}))
    kw = dict(space_groups=str(table))
    straight = train(cond_config(tmp_path / "a", features, **kw))
    train(cond_config(tmp_path / "b", features, steps=3, **kw))
    resumed = train(cond_config(tmp_path / "b", features, steps=6, resume=True, **kw))
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for name, tensor in a["ema"].items():
        assert torch.equal(tensor, b["ema"][name]), name
    assert a["conditional"]["group_dim"] == GROUP_DIM
    model = LoadedModel.load(straight.checkpoint)
    mask = condition_mask(REP)
    assert model.group_conditioned
    assert model.denoiser_config.cond_dim == int(mask.sum()) + GROUP_DIM
    known = composition_condition(REP, ["NaCl"], 4)
    for net in (model.net, model.net.inner):  # make the group matter in the tiny network
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.2) if p.dim() > 1 else None
    R1 = sample_vectors(model, 4, steps=5, seed=1, known=known, groups=[221, 221, 0, 0])
    R2 = sample_vectors(model, 4, steps=5, seed=1, known=known, groups=[62, 62, 0, 0])
    assert np.allclose(R1[:, mask], known[1][:, mask])
    assert not np.allclose(R1[:2], R2[:2])  # the group changes the structure
    assert np.array_equal(R1[2:], R2[2:])  # an open group is the same either way
    assert np.array_equal(R1, sample_vectors(model, 4, steps=5, seed=1, known=known,
                                             groups=[221, 221, 0, 0]))  # fmt: skip
    assert refine_vectors(model, R1, 10, steps=3, groups=[221] * 4).shape == R1.shape
    with pytest.raises(ValueError, match="one space group per sample"):
        sample_vectors(model, 4, steps=5, known=known, groups=[221])
    with pytest.raises(ValueError, match="300 is not in 1–230"):
        sample_vectors(model, 1, steps=5, known=(known[0], known[1][:1]), groups=[300])
    plain = LoadedModel.load(train(cond_config(tmp_path / "c", features)).checkpoint)
    with pytest.raises(ValueError, match="without the space-group condition"):
        sample_vectors(plain, 4, steps=5, known=known, groups=[221] * 4)
    with pytest.raises(ValueError, match="other settings"):
        train(cond_config(tmp_path / "b", features, steps=8, resume=True))


def test_a_bad_group_table_is_one_line(tmp_path, features) -> None:  # noqa: F811
    table = tmp_path / "groups.json"
    table.write_text(json.dumps({"c0": 400}))
    with pytest.raises(ValueError, match="'c0' has space group 400"):
        train(cond_config(tmp_path / "a", features, space_groups=str(table)))
    with pytest.raises(ValueError, match="needs a conditional model"):
        config(tmp_path / "a", features, space_groups=str(table))
