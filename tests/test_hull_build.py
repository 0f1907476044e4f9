"""Reference hull from a dataset's crystals (issue #13): cached energies, μ, virtual points.
ASE's EMT stands in for the universal potential."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from pymatgen.core import Composition
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter

from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.hull_build import build_reference_hull, dataset_energies, fitted_mu


class CountingEMT(EMT):
    calls = 0

    def calculate(self, *args, **kwargs):
        CountingEMT.calls += 1
        super().calculate(*args, **kwargs)


def emt_energy(atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = EMT()
    return atoms.get_potential_energy() / len(atoms)


@pytest.fixture
def tiny_dataset(tmp_path):
    cu, au = bulk("Cu", "fcc", a=3.61), bulk("Au", "fcc", a=4.08)
    cuau = bulk("Cu", "fcc", a=3.85, cubic=True)
    cuau.symbols[[1, 2]] = "Au"
    rows = []
    for k, (atoms, ef, eh) in enumerate([(cu, 0.0, 0.0), (au, 0.0, 0.0), (cuau, -0.1, 0.03)]):
        s = AseAtomsAdaptor.get_structure(atoms)
        rows.append({"material_id": f"x-{k}", "formation_energy_per_atom": ef,
                     "e_above_hull": eh, "cif": str(CifWriter(s))})  # fmt: skip
    (tmp_path / "data" / "mp_20").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "mp_20" / "val.csv", index=False)
    return tmp_path / "data", {"Cu": emt_energy(cu), "Au": emt_energy(au), "CuAu": emt_energy(cuau)}


def test_hull_from_dataset_energies_mu_and_virtual_points(tmp_path, tiny_dataset):
    data, e = tiny_dataset
    cfg, cache = RelaxConfig(), tmp_path / "cache"
    hull = build_reference_hull(
        "mp_20",
        CountingEMT(),
        cfg,
        cache,
        splits=("val",),
        data_dir=data,
        elements=["Cu", "Au"],
        fit_splits=(),
        progress=False,
    )  # fmt: skip  (no fit: μ from elemental crystals)
    assert hull.mu == pytest.approx({"Cu": e["Cu"], "Au": e["Au"]}, abs=1e-5)  # 6 decimals
    ef_emt = e["CuAu"] - 0.5 * (e["Cu"] + e["Au"])
    pts = {(p.id, p.source): p.e_form for p in hull.points}
    assert pts[("x-2", "chgnet")] == pytest.approx(ef_emt, abs=1e-5)
    assert pts[("x-2:dft_virtual", "dft_virtual")] == pytest.approx(-0.1 - 0.03)
    # hull at CuAu: the lowest of the elements' line (0), its own point and its virtual point
    r = hull.e_above_hull(Composition("CuAu"), e["CuAu"])
    assert r.value == pytest.approx(ef_emt - min(ef_emt, -0.13, 0.0), abs=1e-4)
    # its own potential point left out, the virtual point stays: E_hull against DFT's hull
    r = hull.e_above_hull(Composition("CuAu"), e["CuAu"], exclude={"x-2"})
    assert r.value == pytest.approx(ef_emt - min(-0.13, 0.0), abs=1e-4)
    # both left out, only the elements remain: E_hull = its formation energy
    r = hull.e_above_hull(Composition("CuAu"), e["CuAu"], exclude={"x-2", "x-2:dft_virtual"})
    assert r.value == pytest.approx(ef_emt, abs=1e-4)
    assert hull.provenance["elements_without_mu"] == []


def test_energies_are_cached_and_resumed(tmp_path, tiny_dataset):
    data, _ = tiny_dataset
    cfg, cache = RelaxConfig(), tmp_path / "cache"
    CountingEMT.calls = 0
    rows = dataset_energies("mp_20", ["val"], CountingEMT(), cfg, cache, data, progress=False)
    assert len(rows) == 3 and CountingEMT.calls == 3
    again = dataset_energies("mp_20", ["val"], CountingEMT(), cfg, cache, data, progress=False)
    assert CountingEMT.calls == 3  # nothing recomputed
    assert sorted(r["id"] for r in again) == ["x-0", "x-1", "x-2"]
    with open(cache / "mp_20_chgnet_energies.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 3


def test_fitted_mu_recovers_per_element_offsets():
    # potential = DFT + 0.3 x_Na − 0.2 x_Cl (+ a DFT μ of −1 / −2): the fit finds μ exactly
    rows = []
    for f, ef in (("NaCl", -2.0), ("NaCl3", -1.0), ("Na3Cl", -1.2), ("Na", 0.0)):
        c = Composition(f).fractional_composition
        e = ef + c["Na"] * (-1.0 + 0.3) + c["Cl"] * (-2.0 - 0.2)
        rows.append({"formula": f, "energy_per_atom": str(e), "e_form_dft": str(ef)})
    mu = fitted_mu(rows)
    assert mu == pytest.approx({"Na": -0.7, "Cl": -2.2})
