"""Tests of data-directory resolution and of reading CDVAE CSVs and CIF files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from structrepdiff.data import paths
from structrepdiff.data.io import (
    check_structure,
    load_cifs,
    load_split,
    parse_rows,
    read_cdvae_csv,
    split_path,
)
from structrepdiff.data.paths import ENV_VAR, DataNotFoundError, resolve_data_dir
from structrepdiff.data.registry import get_dataset

PEROV = get_dataset("perov_5")
PEROV_SITES = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def perovskite(a_site: str = "Sr", b_site: str = "Ti", a: float = 3.9) -> Structure:
    """Cubic ABO3 perovskite, 5 atoms."""
    return Structure(Lattice.cubic(a), [a_site, b_site, "O", "O", "O"], PEROV_SITES)


def cif(s: Structure) -> str:
    return s.to(fmt="cif")


GOOD_CIF = cif(perovskite())
BROKEN_CIF = "data_broken\n_cell_length_a not-a-number\nthis is not a CIF at all\n"
NOBLE_CIF = cif(perovskite("Kr", "Ti"))  # Kr (Z = 36) is outside the perov_5 vocabulary
BIG_CIF = cif(perovskite().make_supercell([2, 1, 1]))  # 10 atoms > N_max = 5


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No env var, no ../shared/data and no download cache: nothing resolves by default."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "DEFAULT_DOWNLOAD_DIR", tmp_path / "no-cache")
    monkeypatch.setattr(paths, "_candidate_shared_dirs", lambda: [tmp_path / "no-shared"])
    return tmp_path


# --------------------------------------------------------------------------- resolve_data_dir


def test_resolve_explicit_dir_wins_over_env_and_shared(isolated, monkeypatch):
    explicit, env = isolated / "explicit", isolated / "env"
    explicit.mkdir()
    env.mkdir()
    (isolated / "no-shared").mkdir()
    monkeypatch.setenv(ENV_VAR, str(env))
    assert resolve_data_dir(explicit) == explicit
    assert resolve_data_dir(str(explicit)) == explicit


def test_resolve_env_wins_over_shared_and_cache(isolated, monkeypatch):
    env = isolated / "env"
    env.mkdir()
    (isolated / "no-shared").mkdir()
    (isolated / "no-cache").mkdir()
    monkeypatch.setenv(ENV_VAR, str(env))
    assert resolve_data_dir() == env


def test_resolve_empty_env_is_ignored(isolated, monkeypatch):
    (isolated / "no-shared").mkdir()
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_data_dir() == isolated / "no-shared"


def test_resolve_env_pointing_nowhere_is_an_error(isolated, monkeypatch):
    (isolated / "no-shared").mkdir()  # a fallback exists but must not be used silently
    monkeypatch.setenv(ENV_VAR, str(isolated / "missing"))
    with pytest.raises(DataNotFoundError, match=ENV_VAR):
        resolve_data_dir()


def test_resolve_shared_data_next_to_cwd(monkeypatch, tmp_path):
    """The real _candidate_shared_dirs: ../shared/data of the working directory comes first."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "DEFAULT_DOWNLOAD_DIR", tmp_path / "no-cache")
    work, shared = tmp_path / "work", tmp_path / "shared" / "data"
    work.mkdir()
    shared.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv(paths.NO_SHARED_ENV, raising=False)
    assert paths._candidate_shared_dirs()[0] == shared.resolve()
    assert resolve_data_dir() == shared.resolve()
    monkeypatch.setenv(paths.NO_SHARED_ENV, "1")  # a run that must not see this checkout's data
    assert paths._candidate_shared_dirs() == []
    with pytest.raises(paths.DataNotFoundError):
        resolve_data_dir()


def test_resolve_shared_before_download_cache(isolated):
    (isolated / "no-shared").mkdir()
    (isolated / "no-cache").mkdir()
    assert resolve_data_dir() == isolated / "no-shared"


def test_resolve_falls_back_to_download_cache(isolated):
    (isolated / "no-cache").mkdir()
    assert resolve_data_dir() == isolated / "no-cache"


def test_resolve_nothing_found_says_how_to_get_data(isolated):
    with pytest.raises(DataNotFoundError) as info:
        resolve_data_dir()
    msg = str(info.value)
    assert "structrepdiff data download" in msg
    assert "`data_dir`" in msg  # a parameter; the command line says --data-dir
    from structrepdiff.cli.main import as_flags

    assert "--data-dir" in as_flags(msg) and "structrepdiff data download mp_20" in as_flags(msg)
    assert ENV_VAR in msg
    assert isinstance(info.value, FileNotFoundError)


def test_resolve_nonexistent_explicit_dir_is_an_error(isolated):
    (isolated / "no-shared").mkdir()  # a fallback exists but must not replace the explicit dir
    with pytest.raises(DataNotFoundError, match="missing"):
        resolve_data_dir(isolated / "missing")


def test_resolve_explicit_file_is_an_error(isolated):
    f = isolated / "a_file"
    f.write_text("x")
    with pytest.raises(DataNotFoundError, match="not a directory"):
        resolve_data_dir(f)


# --------------------------------------------------------------------------- read_cdvae_csv


def _write_csv(path: Path, rows: list[tuple[str, str]], extra: bool = True) -> Path:
    df = pd.DataFrame({"material_id": [r[0] for r in rows], "cif": [r[1] for r in rows]})
    if extra:
        df["formation_energy_per_atom"] = [0.1 * k for k in range(len(rows))]
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)  # with an unnamed index column, as in the CDVAE files
    return path


def test_read_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_cdvae_csv(tmp_path / "nope.csv")


def test_read_csv_without_cif_column(tmp_path):
    p = tmp_path / "val.csv"
    pd.DataFrame({"material_id": ["a", "b"], "poscar": ["x", "y"]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match="no 'cif' column") as info:
        read_cdvae_csv(p)
    assert "poscar" in str(info.value)  # lists the columns it found


def test_read_csv_empty_file(tmp_path):
    p = tmp_path / "val.csv"
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable CSV"):
        read_cdvae_csv(p)


def test_read_csv_and_csv_gz_load_the_same(tmp_path):
    rows = [("mp-1", GOOD_CIF), ("mp-2", cif(perovskite("Ba")))]
    plain = _write_csv(tmp_path / "val.csv", rows)
    gz = tmp_path / "val.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = read_cdvae_csv(plain), read_cdvae_csv(gz)
    assert list(a["material_id"]) == list(b["material_id"]) == ["mp-1", "mp-2"]
    assert list(a["cif"]) == list(b["cif"]) == [r[1] for r in rows]
    assert len(read_cdvae_csv(gz, limit=1)) == 1


def test_read_csv_without_material_id_gets_row_ids(tmp_path):
    p = tmp_path / "val.csv"
    pd.DataFrame({"cif": [GOOD_CIF, GOOD_CIF, GOOD_CIF]}).to_csv(p, index=False)
    assert list(read_cdvae_csv(p)["material_id"]) == ["row0", "row1", "row2"]


# ------------------------------------------------------------------ parse_rows / load_split

MIXED_ROWS = [
    ("good", GOOD_CIF),
    ("broken", BROKEN_CIF),
    ("noble", NOBLE_CIF),
    ("big", BIG_CIF),
    ("empty", ""),
]
EXPECTED_KIND = {
    "broken": "unparseable CIF",
    "noble": "element outside the vocabulary",
    "big": "too many atoms",
    "empty": "unparseable CIF",
}


def _check_mixed(loaded) -> None:
    assert loaded.ids == ["good"]
    assert len(loaded.structures) == 1
    s = loaded.structures[0]
    assert s.composition.reduced_formula == "SrTiO3" and len(s) == 5
    reasons = {sk.id: sk.reason for sk in loaded.skipped}
    assert set(reasons) == set(EXPECTED_KIND)
    for rid, kind in EXPECTED_KIND.items():
        assert reasons[rid].split(":")[0] == kind, (rid, reasons[rid])
    assert "Kr" in reasons["noble"]
    assert "10" in reasons["big"] and "5" in reasons["big"]
    assert "empty" in reasons["empty"].lower()
    assert loaded.reason_counts() == {
        "unparseable CIF": 2,
        "element outside the vocabulary": 1,
        "too many atoms": 1,
    }


def test_parse_rows_keeps_only_good_rows():
    _check_mixed(parse_rows(MIXED_ROWS, PEROV.atomic_numbers, PEROV.n_max))


def test_load_split_from_tmp_data_dir(tmp_path):
    _write_csv(tmp_path / "perov_5" / "val.csv", MIXED_ROWS)
    loaded = load_split("perov_5", "val", data_dir=tmp_path)
    _check_mixed(loaded)  # also: the empty cif cell (read by pandas as NaN) is an "empty CIF"


def test_load_split_limit_and_string_ids(tmp_path):
    rows = [(str(k), cif(perovskite(a=3.8 + 0.05 * k))) for k in range(4)]
    df = pd.DataFrame({"material_id": [int(r[0]) for r in rows], "cif": [r[1] for r in rows]})
    (tmp_path / "perov_5").mkdir()
    df.to_csv(tmp_path / "perov_5" / "test.csv")
    loaded = load_split("perov_5", "test", data_dir=tmp_path, limit=2)
    assert loaded.ids == ["0", "1"]  # integer material_ids become strings
    assert [round(s.lattice.a, 6) for s in loaded.structures] == [3.8, 3.85]


def test_check_structure_disordered():
    s = perovskite()
    s.replace(0, {"Sr": 0.5, "Ba": 0.5})
    assert check_structure(s, PEROV.atomic_numbers, PEROV.n_max).startswith("disordered")
    assert check_structure(perovskite(), PEROV.atomic_numbers, PEROV.n_max) is None


def test_split_path_missing_split_names_download_command(tmp_path):
    (tmp_path / "perov_5").mkdir()
    (tmp_path / "perov_5" / "val.csv.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as info:
        split_path(tmp_path, "perov_5", "train")
    msg = str(info.value)
    assert "download_split('perov_5', 'train')" in msg
    assert "structrepdiff data download perov_5" in msg
    assert "val.csv.gz" in msg  # says what is present


def test_split_path_prefers_existing_file(tmp_path):
    (tmp_path / "carbon_24").mkdir()
    gz = tmp_path / "carbon_24" / "test.csv.gz"
    gz.write_bytes(b"")
    assert split_path(tmp_path, "carbon_24", "test") == gz


def test_split_path_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        split_path(tmp_path, "mp_21", "val")


# --------------------------------------------------------------------------- load_cifs


def test_load_cifs_folder_good_and_bad(tmp_path):
    (tmp_path / "b_good.cif").write_text(cif(perovskite("Ba")))
    (tmp_path / "a_good.cif").write_text(GOOD_CIF)
    (tmp_path / "c_broken.cif").write_text(BROKEN_CIF)
    (tmp_path / "d_noble.cif").write_text(NOBLE_CIF)
    (tmp_path / "notes.txt").write_text("not a cif")  # ignored: not *.cif
    loaded = load_cifs([tmp_path], PEROV.atomic_numbers, PEROV.n_max)
    assert loaded.ids == ["a_good", "b_good"]  # sorted file order
    assert [s.composition.reduced_formula for s in loaded.structures] == ["SrTiO3", "BaTiO3"]
    assert {s.id: s.reason.split(":")[0] for s in loaded.skipped} == {
        "c_broken": "unparseable CIF",
        "d_noble": "element outside the vocabulary",
    }


def test_load_cifs_duplicate_stems_get_unique_ids(tmp_path):
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.cif").write_text(GOOD_CIF)
    loaded = load_cifs([tmp_path / "one", tmp_path / "two"], PEROV.atomic_numbers, PEROV.n_max)
    assert loaded.ids == ["x", "x_2"]
    assert len(loaded.structures) == 2


def test_load_cifs_ids_unique_even_when_suffix_collides(tmp_path):
    for sub, stem in (("d1", "a"), ("d2", "a"), ("d3", "a_2")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / f"{stem}.cif").write_text(GOOD_CIF)
    loaded = load_cifs(
        [tmp_path / d for d in ("d1", "d2", "d3")], PEROV.atomic_numbers, PEROV.n_max
    )
    assert len(set(loaded.ids)) == 3


def test_load_cifs_single_file_and_missing_path(tmp_path):
    f = tmp_path / "one.cif"
    f.write_text(GOOD_CIF)
    assert load_cifs([f], PEROV.atomic_numbers, PEROV.n_max).ids == ["one"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifs([tmp_path / "missing.cif"], PEROV.atomic_numbers, PEROV.n_max)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no CIF files"):
        load_cifs([empty], PEROV.atomic_numbers, PEROV.n_max)
