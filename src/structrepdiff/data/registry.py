"""Registry of the benchmark datasets (CDVAE splits): vocabulary, N_max, split files, checksums."""

from __future__ import annotations

from dataclasses import dataclass, field

from pymatgen.core import Element

# MP-20: Z = 1..83 and the actinides Ac..Pu (89 elements, as in CDVAE). The val and test splits
# hold 88 of them (no Ne); the train split has the 89th.
_MP20_Z = (*range(1, 84), *range(89, 95))
_PEROV5_Z = (
    3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 16, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 33, 37, 38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 52, 55, 56, 57, 72, 73, 74,
    75, 76, 77, 78, 79, 80, 81, 82, 83,
)  # fmt: skip
_CARBON24_Z = (6,)

CDVAE_BASE_URL = "https://raw.githubusercontent.com/txie-93/cdvae/main/data"


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one benchmark dataset.

    ``atomic_numbers`` is the element vocabulary in periodic-table order; ``n_max`` the largest
    atom count; ``sha256`` maps split name to the sha256 of the original, uncompressed CSV where
    it is known and ``n_bytes`` its size in bytes (both used to verify downloads; from
    ``shared/data/README.md``: the originals in txie-93/cdvae ``data/<dataset>/<split>.csv``).
    MP-20 val is the one split with neither: only a converted copy of it is known.
    """

    name: str
    atomic_numbers: tuple[int, ...]
    n_max: int
    splits: tuple[str, ...] = ("train", "val", "test")
    sha256: dict[str, str] = field(default_factory=dict)
    n_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def elements(self) -> list[str]:
        """Element symbols of the vocabulary, in periodic-table order."""
        return [Element.from_Z(z).symbol for z in self.atomic_numbers]

    def split_url(self, split: str, base_url: str = CDVAE_BASE_URL) -> str:
        """URL of the original CDVAE CSV of ``split``."""
        return f"{base_url.rstrip('/')}/{self.name}/{split}.csv"


DATASETS: dict[str, DatasetInfo] = {
    "mp_20": DatasetInfo(
        "mp_20",
        _MP20_Z,
        20,
        sha256={
            "train": "133bab58dba02d316f9f91174839f17802dce648be4e8659d1a42b32b97fa01d",
            "test": "dd605c7543cf95a13e150aed630d0915e74edc8dea17e85301ee6fbfeb7f500a",
        },
        n_bytes={"train": 34975028, "test": 11599133},
    ),
    "perov_5": DatasetInfo(
        "perov_5",
        _PEROV5_Z,
        5,
        sha256={
            "train": "99cc012c21f5670a3d70d53781e1c4f20a9748a2f54945012db7bec5b563af4c",
            "val": "326f401219901270374b71e2faff63df3a29a99fd26f469993b9f476b693daf2",
            "test": "a85878c685037f0a578257f6d4fcdde00e968dbab73c5f1e90ecef65218513f6",
        },
        n_bytes={"train": 11017473, "val": 3673814, "test": 3671842},
    ),
    "carbon_24": DatasetInfo(
        "carbon_24",
        _CARBON24_Z,
        24,
        sha256={
            "train": "de142c40617954a8b56c66a98bffb1a541abba69c79020067083c74dc445fa5f",
            "val": "36c00689cd63073c954a58bc6ed6e2adb7aeed5a630c994970959a1babffd50e",
            "test": "386b17c08816f434818d51e46687bf72ff3f92348f3ba24823e4758f1fe8a969",
        },
        n_bytes={"train": 6969022, "val": 2321923, "test": 2319350},
    ),
}


def get_dataset(name: str) -> DatasetInfo:
    """Look up a dataset by name; unknown names give a clear error listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def outside_dataset(structures, dataset: str, what: str = "crystals") -> str:
    """One line saying how many of ``structures`` (pymatgen; None entries skipped) a dataset
    cannot hold: elements outside its vocabulary, or more atoms than its ``n_max`` — crystals
    (or templates) from another dataset; "" when all fit or the dataset is unknown."""
    numbers = [[sp.Z for sp in s.species] for s in structures if s is not None]
    return outside_dataset_numbers(numbers, dataset, what)


def outside_dataset_numbers(numbers, dataset: str, what: str = "crystals") -> str:
    """`outside_dataset` from each crystal's atomic numbers (a sequence of int sequences)."""
    info = DATASETS.get(dataset)
    if info is None:
        return ""
    vocab, bad, big, extra = set(info.atomic_numbers), 0, 0, set()
    for z in numbers:
        zs = {int(x) for x in z}
        big += len(z) > info.n_max
        bad += not zs <= vocab or len(z) > info.n_max
        extra |= {Element.from_Z(x).symbol for x in zs - vocab}
    if not bad:
        return ""
    why = [f"elements it lacks: {', '.join(sorted(extra)[:6])}"] if extra else []
    why += [f"{big} with more than its {info.n_max} atoms"] if big else []
    return (f"{bad} of {len(numbers)} {what} cannot come from {dataset} ({'; '.join(why)}): "
            f"another dataset's? They are used against {dataset} as given")
