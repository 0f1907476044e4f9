"""Relaxation (issue #13): guards, resumable file runs, and CHGNet on a rattled crystal.

ASE's EMT potential stands in for a universal potential where the test is about our code
(guards, rows, resume); the CHGNet test needs the `mlip` extra and is skipped without it.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from structrepdiff.cli.main import main
from structrepdiff.relax import RelaxConfig, relax_structure
from structrepdiff.relax import potential as potential_mod


def rattled_cu(seed: int = 0, amount: float = 0.15) -> Structure:
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
    atoms.rattle(amount, seed=seed)
    return AseAtomsAdaptor.get_structure(atoms)


class Exploding(Calculator):
    """Energy that falls without bound: what a diverging potential reports."""

    implemented_properties = ("energy", "forces", "stress")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        self.results = {"energy": -1e13 * n, "forces": np.ones((n, 3)) * 50.0,
                        "stress": np.zeros(6)}  # fmt: skip


def test_emt_relaxation_lowers_energy_and_meets_fmax():
    s = rattled_cu()
    res = relax_structure(s, EMT(), RelaxConfig(fmax=0.05, max_steps=500))
    assert res.status == "converged", res.reason
    assert res.energy_after < res.energy_before
    atoms = AseAtomsAdaptor.get_atoms(res.structure)
    atoms.calc = EMT()
    assert np.abs(atoms.get_forces()).max() < 0.05 * 1.01
    assert res.rmsd > 0.05 and res.steps > 0


def test_rejected_crystals_never_reach_the_potential():
    close = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]])
    res = relax_structure(close, None, RelaxConfig(min_distance=0.5))
    assert res.status == "rejected" and "0.20 Å apart" in res.reason
    heavy = Structure(Lattice.cubic(4.0), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    res = relax_structure(heavy, None, RelaxConfig())
    assert res.status == "rejected" and "Am outside chgnet" in res.reason


def test_divergence_is_a_reason_not_a_result():
    res = relax_structure(rattled_cu(), Exploding(), RelaxConfig(max_steps=5))
    assert res.status == "diverged" and res.structure is None
    assert "below -20" in res.reason


def test_config_refuses_nonsense():
    with pytest.raises(ValueError, match="potential"):
        RelaxConfig(potential="mace")
    with pytest.raises(ValueError):
        RelaxConfig(fmax=0)


def _cif_folder(tmp_path, n=3):
    folder = tmp_path / "pred"
    folder.mkdir()
    for k in range(n):
        rattled_cu(seed=k).to(filename=str(folder / f"cu{k}.cif"))
    Structure(Lattice.cubic(4.0), ["Cu", "Cu"], [[0, 0, 0], [0.01, 0, 0]]).to(
        filename=str(folder / "overlap.cif")
    )
    return folder


def test_relax_cli_writes_rows_and_resumes(tmp_path, monkeypatch):
    calls = []

    def fake_load(name, device="cpu"):
        calls.append(name)
        return EMT()

    monkeypatch.setattr(potential_mod, "load_calculator", fake_load)
    monkeypatch.setattr(potential_mod, "require_potential", lambda name: None)
    pred, out = _cif_folder(tmp_path), tmp_path / "out"
    args = ["relax", "--pred", str(pred), "--out", str(out), "--no-progress", "--fmax", "0.05"]
    assert main([*args, "--limit", "2"]) == 0
    rows = list(csv.DictReader((out / "summary.csv").read_text().splitlines()))
    assert [r["id"] for r in rows] == ["cu0", "cu1"]
    assert main(args) == 0
    rows = {r["id"]: r for r in csv.DictReader((out / "summary.csv").read_text().splitlines())}
    assert sorted(rows) == ["cu0", "cu1", "cu2", "overlap"]  # nothing redone, nothing lost
    assert rows["overlap"]["status"] == "rejected" and rows["overlap"]["cif"] == ""
    for k in range(3):
        r = rows[f"cu{k}"]
        assert float(r["energy_after"]) < float(r["energy_before"])
        assert (out / r["cif"]).exists()
    from ase.io import read

    frames = read(out / "relaxed.extxyz", index=":")
    assert sorted(f.info["id"] for f in frames) == ["cu0", "cu1", "cu2"]
    assert main([*args, "--fmax", "0.2"]) == 2  # other settings in the same --out: refused


def test_missing_potential_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sevenn" else real(name, *a))  # fmt: skip
    pred, out = _cif_folder(tmp_path), tmp_path / "out"
    args = ["relax", "--pred", str(pred), "--out", str(out), "--potential", "sevennet"]
    assert main([*args, "--no-progress"]) == 3  # a missing optional dependency
    assert "pip install sevenn" in capsys.readouterr().err
    assert not out.exists()


def test_chgnet_relaxes_rattled_nacl():
    pytest.importorskip("chgnet")
    from chgnet.model import CHGNet  # noqa: F401

    atoms = bulk("NaCl", "rocksalt", a=5.8, cubic=True)
    atoms.rattle(0.1, seed=1)
    s = AseAtomsAdaptor.get_structure(atoms)
    calc = potential_mod.load_calculator("chgnet")
    res = relax_structure(s, calc, RelaxConfig(fmax=0.1, max_steps=300))
    assert res.status == "converged", res.reason
    assert res.energy_after < res.energy_before
    relaxed = AseAtomsAdaptor.get_atoms(res.structure)
    relaxed.calc = calc
    assert np.abs(relaxed.get_forces()).max() < 0.1 * 1.05


def test_relax_reads_a_reconstruction_folder(tmp_path, monkeypatch):
    """A `reconstruct` / `generate` folder is a valid --pred: every row, with or without a CIF,
    gets a relaxation row (EMT stands in; elements it lacks become a recorded failure)."""
    from structrepdiff.relax.run import RelaxJob, run_relax

    monkeypatch.setattr(potential_mod, "load_calculator", lambda name, device="cpu": EMT())
    rec = tmp_path / "gen"
    rec.mkdir()
    rattled_cu().to(filename=str(rec / "a.cif"))
    Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(rec / "b.cif")
    )
    (rec / "summary.csv").write_text(
        "id,status,loss,converged,steps,seconds,reason,cif\n"
        "a,not_converged,1.0e-02,0,10,0.1,,a.cif\n"
        "b,not_converged,1.0e-02,0,10,0.1,,b.cif\n"
        "c,rejected,,,,,zero atoms,\n")  # fmt: skip
    s = run_relax(RelaxJob(rec, rec / "relaxed", RelaxConfig(), progress=False))
    rows = {r["id"]: r for r in csv.DictReader((rec / "relaxed/summary.csv").read_text()
                                                .splitlines())}  # fmt: skip
    assert rows["a"]["status"] in ("converged", "not_converged") and rows["a"]["cif"]
    assert rows["b"]["status"] == "failed" and rows["b"]["reason"]  # EMT has no Cs
    assert rows["c"]["status"] == "rejected" and "zero atoms" in rows["c"]["reason"]
    assert sum(s.counts.values()) == 3


def test_a_symmetric_first_stage_keeps_the_space_group():
    """A tetragonally strained Cu3Au (P4/mmm) with one atom nudged off its site along z (which
    P4mm allows): the FixSymmetry stage keeps the group found at symprec (P4mm or higher),
    the free stage has the rest of the steps, and without the stage nothing changes."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    s = Structure(Lattice.tetragonal(3.75, 3.95), ["Au", "Cu", "Cu", "Cu"],
                  [[0, 0, 0.02], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])  # fmt: skip
    sg0 = SpacegroupAnalyzer(s, symprec=0.01).get_space_group_number()
    cfg = RelaxConfig(fmax=0.02, max_steps=200, symmetric_steps=60, symprec=0.01)
    res = relax_structure(s, EMT(), cfg)
    assert res.symmetric is not None and 0 < res.symmetric_steps <= 60
    assert res.steps >= res.symmetric_steps
    sg1 = SpacegroupAnalyzer(res.symmetric, symprec=1e-4).get_space_group_number()
    assert sg0 == 99 and sg1 >= sg0
    plain = relax_structure(s, EMT(), RelaxConfig(fmax=0.02, max_steps=200, symmetric_steps=0))
    assert plain.symmetric is None and plain.symmetric_steps == 0
    assert RelaxConfig(max_steps=10, symmetric_steps=20).sym_steps == 10  # all symmetric
    assert RelaxConfig(max_steps=0).sym_steps == 0  # single points are never refined
    with pytest.raises(ValueError, match="symmetric_steps"):
        RelaxConfig(symmetric_steps=-1)


def test_sevennet_energies_get_mp2020_corrections_by_hand():
    """SevenNet-0's raw energies on the MP2020 scale: an iron oxide is a GGA+U entry (U
    correction −2.256 eV per Fe, oxide −0.687 eV per O, MP2020's published values), not a GGA
    entry left uncorrected; NaCl gets the chloride correction only (−0.614 eV per Cl)."""
    sites = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]
    fe2o3 = Structure(Lattice.cubic(4.0), ["Fe", "Fe", "O", "O", "O"], sites)
    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    corrected = potential_mod.corrected_energy
    assert corrected("sevennet", fe2o3, -30.0) == pytest.approx(-30 - 2 * 2.256 - 3 * 0.687)
    assert corrected("sevennet", nacl, -6.0) == pytest.approx(-6 - 0.614)
    assert corrected("chgnet", fe2o3, -30.0) == -30.0
