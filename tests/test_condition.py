"""Conditional sampling: fixed composition and atom count, the rest sampled (by replacement)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from tests.conftest import random_skewed_structure

from structrepdiff.cli.main import main
from structrepdiff.descriptor.config import EADConfig
from structrepdiff.diffusion.ddpm import GaussianDiffusion
from structrepdiff.diffusion.denoisers import DenoiserConfig, build_denoiser
from structrepdiff.features import FeatureSet, load_features, save_features
from structrepdiff.representation.condition import (
    composition_condition,
    composition_row,
    conditions_from_rows,
)
from structrepdiff.representation.decode import decode
from structrepdiff.representation.encode import Representation, encode_structures

EAD = EADConfig(L=1, etas=(1.0, 20.0), rs=(0.0, 1.0, 2.0, 3.0), cutoff=4.0)
REP = Representation(EAD, (8, 11, 17, 26), n_max=6)  # O, Na, Cl, Fe


def test_composition_row_takes_the_formula_literally() -> None:
    row = composition_row(REP, "Fe2O3")
    comp = row[REP.layout.slices["composition"]]
    assert comp.tolist() == [0.6, 0.0, 0.0, 0.4]
    assert row[REP.layout.slices["n_atoms"]].tolist() == [5 / 6]
    assert not row[REP.layout.slices["ead_max"]].any()
    for bad, why in (("NaCu", "not in the model"), ("Na4Cl3", "more than N_max"),
                     ("NaCl0.5", "whole"), ("Xx9!", "cannot parse")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            composition_row(REP, bad)
    mask, values = composition_condition(REP, ["NaCl", "Fe2O3"], 5)
    assert values.shape == (5, REP.layout.dim) and mask.sum() == 4 + 1
    assert np.array_equal(values[2], values[0]) and np.array_equal(values[3], values[1])


def test_conditions_from_rows_are_seeded_and_use_every_row_first() -> None:
    R = np.arange(3 * REP.layout.dim, dtype=float).reshape(3, -1)
    _, a = conditions_from_rows(REP, R, 5, seed=1)
    _, b = conditions_from_rows(REP, R, 5, seed=1)
    assert np.array_equal(a, b)
    assert sorted(a[:3, 0].tolist()) == sorted(R[:, 0].tolist())  # a permutation first


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_known_features_come_out_exactly_and_the_rest_varies(sampler: str) -> None:
    diff = GaussianDiffusion(T=30)
    net = build_denoiser(DenoiserConfig(kind="mlp", dim=6, hidden=16, depth=1, time_dim=8))
    torch.nn.init.normal_(net.out.weight, std=0.1)  # a denoiser that is not zero
    mask = torch.tensor([False, True, False, False, True, False])
    values = torch.tensor([[0.0, 0.7, 0.0, 0.0, -1.2, 0.0]]).repeat(4, 1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if sampler == "ddim":
            x = diff.sample_ddim(net, (4, 6), steps=10, generator=g, known=(mask, values))
        else:
            x = diff.sample_ddpm(net, (4, 6), generator=g, known=(mask, values))
    assert torch.allclose(x[:, mask], values[:, mask], atol=1e-5)
    assert x[:, ~mask].std(0).min() > 1e-3  # unknown features are still sampled


def test_cli_sample_with_formulas_decodes_to_them(tmp_path) -> None:
    structs = [random_skewed_structure(seed) for seed in range(12)]
    feats = tmp_path / "R.npz"
    save_features(FeatureSet(encode_structures(structs, REP), [f"c{k}" for k in range(12)], REP),
                  feats)  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "--features", str(feats), "--out", str(run), "--hidden", "32",
                 "--depth", "1", "--T", "20", "--steps", "2", "--batch-size", "8",
                 "--scaler", "blockwise", "--no-progress"]) == 0  # fmt: skip
    out = tmp_path / "s.npz"
    assert main(["sample", "--model", str(run / "checkpoint.pt"), "--num", "4", "--out",
                 str(out), "--sample-steps", "10", "--formula", "NaCl", "--formula", "Fe2O3",
                 "--no-progress"]) == 0  # fmt: skip
    fs = load_features(out)
    got = [dict(Counter(d.numbers.tolist())) for d in decode(fs.R, REP)]
    assert got == [{11: 1, 17: 1}, {8: 3, 26: 2}] * 2
    assert fs.source["formulas"] == ["NaCl", "Fe2O3"]
    bad = ["sample", "--model", str(run / "checkpoint.pt"), "--num", "1", "--out",
           str(tmp_path / "b.npz"), "--formula", "NaCu", "--no-progress"]  # fmt: skip
    assert main(bad) == 2  # Cu is not in the model's elements: a clear error
