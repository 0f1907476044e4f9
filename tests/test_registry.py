"""The dataset registry agrees with the data: vocabulary, N_max and split names."""

from __future__ import annotations

import pandas as pd
import pytest
from pymatgen.core import Composition

from structrepdiff.data.io import load_split, split_path
from structrepdiff.data.paths import DataNotFoundError
from structrepdiff.data.registry import DATASETS, get_dataset

FORMULA_COLUMN = {"mp_20": "pretty_formula", "perov_5": "formula", "carbon_24": None}


def test_vocabularies_are_periodic_table_ordered_with_the_published_sizes() -> None:
    sizes = {name: len(info.atomic_numbers) for name, info in DATASETS.items()}
    assert sizes == {"mp_20": 89, "perov_5": 56, "carbon_24": 1}
    for info in DATASETS.values():
        assert list(info.atomic_numbers) == sorted(set(info.atomic_numbers))
        assert info.splits == ("train", "val", "test")
    assert get_dataset("carbon_24").elements == ["C"]
    assert {n: DATASETS[n].n_max for n in DATASETS} == {"mp_20": 20, "perov_5": 5, "carbon_24": 24}
    with pytest.raises(ValueError, match="known: mp_20"):
        get_dataset("mp20")


def _split_or_skip(name: str, split: str):
    try:
        return split_path(None, name, split)
    except (DataNotFoundError, FileNotFoundError) as exc:
        pytest.skip(f"data not available: {exc}")


@pytest.mark.parametrize("name", ["mp_20", "perov_5"])
@pytest.mark.parametrize("split", ["val", "test"])
def test_every_element_in_the_data_is_in_the_vocabulary(name: str, split: str) -> None:
    df = pd.read_csv(_split_or_skip(name, split), usecols=[FORMULA_COLUMN[name]])
    seen = set()
    for formula in df[FORMULA_COLUMN[name]].unique():
        seen |= {el.Z for el in Composition(formula).elements}
    assert seen <= set(DATASETS[name].atomic_numbers)
    assert len(seen) >= 0.9 * len(DATASETS[name].atomic_numbers)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DATASETS))
def test_whole_splits_parse_within_vocabulary_and_n_max(name: str) -> None:
    """Every row of val and test parses and passes the checks (about a minute for MP-20)."""
    _split_or_skip(name, "val")
    for split in ("val", "test"):
        loaded = load_split(name, split)
        assert loaded.skipped == []
        assert max(len(s) for s in loaded.structures) == DATASETS[name].n_max
