"""Composition model: grammar, exact normalisation, samples, training and round trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from structrepdiff.composition import CompositionModel, CompositionModelConfig, TokenGrammar
from structrepdiff.composition.train import CompositionTrainConfig, train_composition
from structrepdiff.evaluate.composition_stats import composition_statistics, js_divergence


def all_counts(V: int, n_max: int) -> np.ndarray:
    """Every non-negative integer vector of length V with 1 <= sum <= n_max."""
    rows = [c for c in itertools.product(range(n_max + 1), repeat=V) if 1 <= sum(c) <= n_max]
    return np.array(rows, dtype=np.int64)


def test_encode_decode_round_trip():
    g = TokenGrammar(n_elements=5, n_max=6)
    counts = all_counts(5, 6)
    np.testing.assert_array_equal(g.decode(g.encode(counts)), counts)


@pytest.mark.parametrize("bad", [[[0, 0, 0]], [[2, 2, 1]], [[1, -1, 1]]])
def test_encode_rejects_bad_counts(bad):
    with pytest.raises(ValueError):
        TokenGrammar(n_elements=3, n_max=4).encode(np.array(bad))


def test_every_encoded_token_is_allowed_by_the_grammar():
    g = TokenGrammar(n_elements=4, n_max=5)
    tokens = torch.as_tensor(g.encode(all_counts(4, 5)))
    rem, last, phase = g.states(tokens)
    ok = g.allowed(rem[:, :-1], last[:, :-1], phase[:, :-1])
    assert ok.gather(-1, tokens[:, 1:, None]).all()


def test_probabilities_over_all_compositions_sum_to_one():
    """The grammar-masked softmax is normalised over exactly the count vectors with
    1 <= N <= N_max: summing exp(log p) over all of them gives 1 for a random network."""
    cfg = CompositionModelConfig(atomic_numbers=(3, 8, 26), n_max=4, embed=8, hidden=16)
    model = CompositionModel(cfg).eval()
    counts = all_counts(3, 4)
    with torch.no_grad():
        total = model.log_prob(*model.prepare(counts)).double().exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-5)


def test_samples_are_count_vectors_summing_to_at_most_n_max_and_seeded():
    cfg = CompositionModelConfig(atomic_numbers=tuple(range(1, 11)), n_max=7, hidden=16)
    model = CompositionModel(cfg).eval()
    a = model.sample(500, torch.Generator().manual_seed(3))
    b = model.sample(500, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64 and a.shape == (500, 10)
    assert (a >= 0).all() and (a.sum(1) >= 1).all() and (a.sum(1) <= 7).all()
    fixed = model.sample(50, torch.Generator().manual_seed(0), n_atoms=torch.full((50,), 6))
    assert (fixed.sum(1) == 6).all()


def test_training_learns_a_small_composition_distribution():
    """Two compositions in a 4:1 ratio: the trained model puts most mass on them, in about
    that ratio."""
    counts = np.array([[3, 1, 0]] * 400 + [[2, 0, 2]] * 100)  # over (O, Na, Cl)
    cfg = CompositionTrainConfig(steps=300, eval_every=50, hidden=32, dropout=0.0, patience=100)
    model, record = train_composition(counts, (8, 11, 17), 4, cfg)
    s = model.sample(2000, torch.Generator().manual_seed(0))
    first = (s == [3, 1, 0]).all(1).mean()
    second = (s == [2, 0, 2]).all(1).mean()
    assert first + second > 0.95
    assert first / second == pytest.approx(4.0, rel=0.3)
    assert record["best_val_nll"] < 1.0


def test_state_round_trip_with_weights_only(tmp_path):
    cfg = CompositionModelConfig(atomic_numbers=(1, 6, 8), n_max=5, hidden=16)
    model = CompositionModel(cfg).eval()
    torch.save(model.state(), tmp_path / "c.pt")
    back = CompositionModel.from_state(torch.load(tmp_path / "c.pt", weights_only=True))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    np.testing.assert_array_equal(model.sample(100, g1), back.sample(100, g2))
    with pytest.raises(ValueError, match="not a structrepdiff composition model"):
        CompositionModel.from_state({"format": "other"})


def test_composition_statistics_by_hand():
    comps = [{"Na": 1, "Cl": 1}, {"Na": 1, "Cl": 1}, {"Fe": 1}, {"Na": 1, "Cl": 2}]
    ref = [{"Na": 1, "Cl": 1}, {"Fe": 2}]
    train = [{"Na": 2, "Cl": 2}]  # reduces to NaCl
    s = composition_statistics(comps, ref, train)
    assert s["n"] == 4
    assert s["smact_valid_pct"] == pytest.approx(75.0)  # NaCl2 is not charge neutral
    assert s["n_elements_hist"] == {1: 1, 2: 3}
    assert s["emd_n_elements"] == pytest.approx(0.25)  # |mean 1.75 - 1.5|, 1-D, ordered
    assert s["unique_pct"] == pytest.approx(75.0)  # NaCl, Fe, NaCl2
    assert s["novel_pct"] == pytest.approx(50.0)  # NaCl is in training twice
    assert js_divergence({"a": 1.0}, {"a": 3.0}) == pytest.approx(0.0)
    assert js_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
