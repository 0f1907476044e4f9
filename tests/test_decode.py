"""Tests of decoding R (element counts, lattice, targets) and of the per-feature scaler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list
from pymatgen.io.ase import AseAtomsAdaptor

from structrepdiff.data.io import load_split, split_path
from structrepdiff.data.paths import DataNotFoundError
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import EADConfig
from structrepdiff.representation.decode import decode, largest_remainder
from structrepdiff.representation.encode import Representation, canonical, encode_structures
from structrepdiff.representation.scaler import Scaler

CHEAP = EADConfig(L=1, etas=(1.0, 20.0), rs=(0.0, 1.0, 2.0, 3.0), cutoff=5.0)


def _real_data_dir(dataset: str, split: str = "val"):
    try:
        return split_path(None, dataset, split).parent.parent
    except (DataNotFoundError, FileNotFoundError) as exc:
        pytest.skip(f"real {dataset} {split} data not available: {exc}")


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("dataset", ["perov_5", "carbon_24", "mp_20"])
def test_round_trip_on_real_rows(dataset):
    data_dir = _real_data_dir(dataset)
    info = get_dataset(dataset)
    loaded = load_split(dataset, "val", data_dir=data_dir, limit=8)
    assert len(loaded.structures) == 8 and not loaded.skipped
    rep = Representation(CHEAP, info.atomic_numbers, info.n_max)
    R = encode_structures(loaded.structures, rep)
    assert R.shape == (8, rep.layout.dim)
    decoded = decode(R, rep)
    assert len(decoded) == 8
    sl = rep.layout.slices
    for s, row, d in zip(loaded.structures, R, decoded, strict=True):
        assert d.ok, d.reason
        np.testing.assert_array_equal(d.numbers, np.sort(s.atomic_numbers))
        np.testing.assert_allclose(d.lattice, canonical(s).lattice.parameters, rtol=0, atol=1e-9)
        # independent oracle: ASE's neighbour list on the structure as given (not canonicalised)
        dist = neighbor_list("d", AseAtomsAdaptor.get_atoms(s), CHEAP.cutoff)
        assert dist.size > 0
        assert d.d_min == pytest.approx(dist.min(), abs=1e-7)
        np.testing.assert_array_equal(d.ead_max, row[sl["ead_max"]])
        np.testing.assert_array_equal(d.ead_min, row[sl["ead_min"]])
        assert np.all(d.ead_max >= d.ead_min)


# --------------------------------------------------------------------------- largest_remainder


def test_largest_remainder_exact_fractions():
    np.testing.assert_array_equal(largest_remainder(np.array([0.2, 0.2, 0.6]), 5), [1, 1, 3])
    np.testing.assert_array_equal(
        largest_remainder(np.array([0.0, 0.25, 0.0, 0.75]), 20), [0, 5, 0, 15]
    )


def test_largest_remainder_noisy_fractions_sum_to_n():
    # q = [1.04, 0.94, 3.02] -> floors [1, 0, 3], the one missing atom goes to the largest remainder
    counts = largest_remainder(np.array([0.21, 0.19, 0.61]), 5)
    np.testing.assert_array_equal(counts, [1, 1, 3])
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 25))
        p = rng.random(7) * (rng.random(7) > 0.4) + 1e-3
        counts = largest_remainder(p + rng.normal(0, 0.01, 7), n)
        assert counts.sum() == n and counts.min() >= 0


def test_largest_remainder_negatives_ignored():
    np.testing.assert_array_equal(largest_remainder(np.array([0.5, -0.3, 0.5]), 2), [1, 0, 1])
    np.testing.assert_array_equal(largest_remainder(np.array([-1.0, 0.9, -0.2]), 3), [0, 3, 0])


def test_largest_remainder_more_elements_than_atoms_keeps_top_n():
    counts = largest_remainder(np.array([0.1, 0.3, 0.15, 0.25, 0.2]), 2)
    np.testing.assert_array_equal(counts, [0, 1, 0, 1, 0])
    counts = largest_remainder(np.full(10, 0.1) + np.arange(10) * 1e-3, 3)
    np.testing.assert_array_equal(np.nonzero(counts)[0], [7, 8, 9])
    assert counts.sum() == 3


def test_largest_remainder_all_non_positive_is_none():
    assert largest_remainder(np.array([0.0, -0.1, 0.0]), 4) is None
    assert largest_remainder(np.zeros(3), 1) is None
    assert largest_remainder(np.array([np.nan, -1.0]), 2) is None


# --------------------------------------------------------------------------- decode reasons

SMALL_REP = Representation(CHEAP, (3, 8, 22), 5)


def _valid_row() -> np.ndarray:
    sl = SMALL_REP.layout.slices
    row = np.zeros(SMALL_REP.layout.dim)
    row[sl["ead_max"]] = 2.0
    row[sl["ead_min"]] = 1.0
    row[sl["d_min"]] = 1.9
    row[sl["composition"]] = [0.2, 0.6, 0.2]
    row[sl["n_atoms"]] = 1.0
    row[sl["lattice"]] = [3.9, 4.0, 4.1, 90.0, 95.0, 100.0]
    return row


def _with(block: str, value, index=None) -> np.ndarray:
    row = _valid_row()
    s = SMALL_REP.layout.slices[block]
    if index is None:
        row[s] = value
    else:
        row[s.start + index] = value
    return row


def test_decode_valid_row():
    (d,) = decode(_valid_row(), SMALL_REP)
    assert d.ok and d.reason is None
    np.testing.assert_array_equal(d.numbers, [3, 8, 8, 8, 22])
    np.testing.assert_array_equal(d.lattice, [3.9, 4.0, 4.1, 90.0, 95.0, 100.0])
    assert d.d_min == 1.9
    assert np.all(d.ead_max == 2.0) and np.all(d.ead_min == 1.0)


def test_decode_rounds_atom_count():
    (d,) = decode(_with("n_atoms", 0.62), SMALL_REP)  # 3.1 atoms -> 3
    assert d.ok
    # q = [0.6, 1.8, 0.6] -> floors [0, 1, 0]; the two missing atoms go to O, then Li (ties: first)
    np.testing.assert_array_equal(d.numbers, [3, 8, 8])


BAD_ROWS = {
    "nan in ead": (_with("ead_max", np.nan, 3), "non-finite"),
    "nan in composition": (_with("composition", np.nan, 1), "non-finite"),
    "inf in lattice": (_with("lattice", np.inf, 0), "non-finite"),
    "nan in d_min": (_with("d_min", np.nan), "non-finite"),
    "zero length": (_with("lattice", 0.0, 1), "non-positive lattice length"),
    "negative length": (_with("lattice", -3.0, 2), "non-positive lattice length"),
    "angle 180": (_with("lattice", 180.0, 3), "angle outside"),
    "angle 200": (_with("lattice", 200.0, 4), "angle outside"),
    "angle 0": (_with("lattice", 0.0, 5), "angle outside"),
    "angle negative": (_with("lattice", -10.0, 3), "angle outside"),
    "no cell": (_with("lattice", [4.0, 4.0, 4.0, 10.0, 10.0, 170.0]), "no valid cell"),
    "zero atoms": (_with("n_atoms", 0.0), "zero atoms"),
    "negative atoms": (_with("n_atoms", -0.4), "zero atoms"),
    "too few atoms": (_with("n_atoms", 0.09), "zero atoms"),  # 0.45 atoms
    "empty composition": (_with("composition", [0.0, -0.2, 0.0]), "empty composition"),
}


@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_decode_bad_rows_get_reasons(name):
    row, expected = BAD_ROWS[name]
    (d,) = decode(row, SMALL_REP)
    assert not d.ok
    assert d.numbers is None
    assert expected in d.reason, d.reason


def test_decode_nan_reason_names_block():
    (d,) = decode(_with("ead_min", np.nan, 0), SMALL_REP)
    assert "ead_min" in d.reason and "lattice" not in d.reason


def test_decode_batch_mixed_never_raises():
    rows = np.stack([_valid_row()] + [r for r, _ in BAD_ROWS.values()] + [_valid_row()])
    out = decode(rows, SMALL_REP)
    assert [d.ok for d in out] == [True] + [False] * len(BAD_ROWS) + [True]


def test_decode_huge_atom_count_does_not_raise():
    (d,) = decode(_with("n_atoms", 1e30), SMALL_REP)
    assert not d.ok and "too many atoms" in d.reason


def test_decode_wrong_column_count_raises():
    with pytest.raises(ValueError, match="columns"):
        decode(np.zeros((2, SMALL_REP.layout.dim + 1)), SMALL_REP)
    with pytest.raises(ValueError, match="columns"):
        decode(np.zeros(SMALL_REP.layout.dim - 1), SMALL_REP)


# --------------------------------------------------------------------------- scaler


def _matrix() -> np.ndarray:
    rng = np.random.default_rng(1)
    R = rng.normal(3.0, 2.0, size=(40, 6)) * np.array([1, 10, 1e-6, 1, 100, 1])
    R[:, 3] = 7.5  # constant column
    return R


def test_scaler_fit_transform_inverse_numpy():
    R = _matrix()
    sc = Scaler.fit(R)
    Z = sc.transform(R)
    varying = [0, 1, 2, 4, 5]
    np.testing.assert_allclose(Z[:, varying].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, varying].std(0), 1, atol=1e-12)
    np.testing.assert_allclose(sc.inverse(Z), R, rtol=1e-12, atol=1e-18)


def test_scaler_constant_column_gets_std_one():
    sc = Scaler.fit(_matrix())
    assert sc.std[3] == 1.0 and sc.mean[3] == 7.5
    assert np.all(sc.transform(_matrix())[:, 3] == 0.0)
    assert np.all(sc.std[[0, 1, 2, 4, 5]] != 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaler_torch_round_trip(dtype):
    R = _matrix()
    sc = Scaler.fit(R)
    Rt = torch.tensor(R, dtype=dtype)
    Zt = sc.transform(Rt)
    assert isinstance(Zt, torch.Tensor) and Zt.dtype == dtype
    np.testing.assert_allclose(
        Zt.double().numpy(),
        sc.transform(R),
        rtol=1e-5 if dtype == torch.float32 else 1e-12,
        atol=1e-5,
    )
    back = sc.inverse(Zt)
    assert back.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(back.double().numpy(), R, rtol=tol, atol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_scaler_transform_integer_input():
    sc = Scaler.fit(np.array([[1.0], [2.0]]))  # mean 1.5, std 0.5
    np.testing.assert_allclose(sc.transform(np.array([[1], [2]])), [[-1.0], [1.0]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_scaler_fit_rejects_non_finite(bad):
    R = _matrix()
    R[5, 2] = bad
    with pytest.raises(ValueError, match="non-finite"):
        Scaler.fit(R)


def test_scaler_fit_rejects_bad_shape():
    with pytest.raises(ValueError):
        Scaler.fit(np.zeros((0, 3)))
    with pytest.raises(ValueError):
        Scaler.fit(np.zeros(3))


def test_scaler_save_load_round_trip(tmp_path):
    sc = Scaler.fit(_matrix())
    path = tmp_path / "scaler.npz"
    sc.save(path)
    back = Scaler.load(path)
    assert back.kind == "standard"
    np.testing.assert_array_equal(back.mean, sc.mean)
    np.testing.assert_array_equal(back.std, sc.std)
    np.testing.assert_array_equal(back.transform(_matrix()), sc.transform(_matrix()))
    assert Scaler.from_dict(sc.to_dict()).std.tolist() == sc.std.tolist()
    with pytest.raises(ValueError, match="unknown scaler kind"):
        Scaler.from_dict({**sc.to_dict(), "kind": "minmax"})


def test_blockwise_scaler_maps_the_block_to_minus_one_one_with_one_shared_range():
    rng = np.random.default_rng(3)
    comp = np.zeros((50, 4))
    comp[:, 0] = 0.5
    comp[rng.integers(0, 50, 3), 1] = 0.25  # a rare element
    comp[:, 2] = 0.5 - comp[:, 1]
    R = np.hstack([rng.normal(size=(50, 2)), comp])
    block = slice(2, 6)
    sc = Scaler.fit(R, minmax_blocks=[block])
    assert sc.kind == "blockwise"
    Z = sc.transform(R)
    # one affine map for the block: 0 -> -1, the block maximum 0.5 -> +1, 0.25 -> 0
    np.testing.assert_allclose(Z[:, 5], -1.0)
    np.testing.assert_allclose(Z[comp[:, 1] == 0.25, 3], 0.0, atol=1e-12)
    assert Z[:, block].min() == -1.0 and Z[:, block].max() == 1.0
    # a per-feature z-score would send the rare element far out instead
    assert Scaler.fit(R).transform(R)[:, 3].max() > 3.5
    # columns outside the block are standardised as before
    np.testing.assert_allclose(Z[:, :2], Scaler.fit(R).transform(R)[:, :2])
    np.testing.assert_allclose(sc.inverse(Z), R, atol=1e-12)
    assert Scaler.from_dict(sc.to_dict()).kind == "blockwise"
