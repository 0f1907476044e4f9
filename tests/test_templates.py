"""Template starts: species renaming, ranking, round trip, and a start that converges at once."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure
from tests.test_reconstruct import EAD, MATCHER, as_structure, crystals, targets_of

from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.optimize import rank_starts, reconstruct_batch
from structrepdiff.reconstruct.templates import (
    TemplateSet,
    shape_distance,
    signature,
    species_maps,
)


def perovskite(a: str, b: str, x: str, lattice: float) -> Structure:
    return Structure(
        Lattice.cubic(lattice),
        [a, b, x, x, x],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


def test_signature_and_species_maps_rename_equal_counts_every_way() -> None:
    assert signature(np.array([20, 31, 31, 15, 15])) == (1, 2, 2)
    target = np.array([8, 8, 11, 17, 17])  # sorted by Z: O2 Na Cl2
    template = np.array([55, 9, 9, 3, 3])  # Cs F2 Li2: F and Li both have count 2
    maps = species_maps(target, template, limit=10)
    assert len(maps) == 2  # F->O, Li->Cl or Li->O, F->Cl; Cs->Na fixed
    for idx in maps:
        renamed = template[idx]
        assert sorted(idx.tolist()) == list(range(5))
        assert renamed[2] == 55  # the single Na slot takes the single Cs
        assert len(set(renamed[:2])) == 1 and len(set(renamed[3:])) == 1
    assert {tuple(template[idx][:2]) for idx in maps} == {(9, 9), (3, 3)}
    assert len(species_maps(target, template, limit=1)) == 1


def test_first_species_map_pairs_by_electronegativity() -> None:
    """NaFeNOF from BaTiO2NF-like sites: Na (most electropositive) takes Ba's site, Fe takes
    Ti's, and N, O, F take the anion sites in order of electronegativity."""
    target = np.array([7, 8, 9, 11, 26])  # N O F Na Fe, sorted by Z
    template = np.array([56, 22, 8, 7, 9])  # Ba Ti O N F in the template's own order
    maps = species_maps(target, template, limit=200)
    assert len(maps) == 120  # five species of count one: 5! renamings
    assert template[maps[0]].tolist() == [7, 8, 9, 56, 22]  # N->N, O->O, F->F, Na->Ba, Fe->Ti
    assert len({m.tobytes() for m in maps}) == 120


def test_candidates_drop_repeated_geometry_and_respect_budget() -> None:
    structs = [perovskite("Ba", "Ti", "O", 4.0), perovskite("Sr", "Ti", "O", 3.9)]
    ts = TemplateSet.from_structures(["BaTiO3", "SrTiO3"], structs)
    target, cell = np.array([8, 8, 8, 22, 38]), np.array([3.9, 3.9, 3.9, 90, 90, 90])
    cands = ts.candidates(target, cell)
    assert len(cands) == 2  # SrTiO3 repeats BaTiO3's two geometries exactly: dropped
    assert len(ts.candidates(target, cell, budget=1)) == 1


def test_shape_distance_ignores_volume_and_sees_shape() -> None:
    cubic = np.array([4.0, 4.0, 4.0, 90, 90, 90])
    cells = np.array(
        [[5.0, 5.0, 5.0, 90, 90, 90], [4.0, 4.0, 6.0, 90, 90, 90], [4.0, 4.0, 4.0, 60, 60, 60]]
    )
    d = shape_distance(cubic, cells)
    assert d[0] < 1e-12 and d[1] > 0.1 and d[2] > 1.0


def test_candidates_match_signature_exclude_and_round_trip(tmp_path) -> None:
    structs = [
        perovskite("Ba", "Ti", "O", 4.0),
        perovskite("Sr", "Ti", "O", 3.9),
        crystals()["CsCl"],
    ]
    ts = TemplateSet.from_structures(["BaTiO3", "SrTiO3", "CsCl"], structs)
    path = tmp_path / "t.npz"
    ts.save(path)
    back = TemplateSet.load(path)
    assert back.ids == ts.ids and np.array_equal(back.lattice, ts.lattice)
    assert all(np.array_equal(a, b) for a, b in zip(back.frac, ts.frac, strict=True))
    target = np.array([8, 8, 8, 22, 38])
    cands = back.candidates(target, np.array([3.9, 3.9, 3.9, 90, 90, 90]), exclude="SrTiO3")
    # Ba and Ti both occur once, so they may play Sr and Ti either way round
    assert [c[0] for c in cands] == ["BaTiO3", "BaTiO3"] and cands[0][1].shape == (5, 3)
    assert back.candidates(np.array([1, 1, 1]), np.array([3, 3, 3, 90, 90, 90])) == []


def test_template_of_the_same_prototype_converges_at_once() -> None:
    """SrTiO3 started from BaTiO3's coordinates (same prototype, other species and cell)."""
    target = targets_of({"SrTiO3": crystals()["SrTiO3"]})[0]
    ts = TemplateSet.from_structures(["BaTiO3"], [perovskite("Ba", "Ti", "O", 4.0)])
    cfg = ReconstructConfig(trials=2, hops=2, steps=100, seed=0)
    cands = [f for _, f in ts.candidates(target.numbers, target.lattice)]
    random_start = np.random.default_rng(0).uniform(0, 1, (5, 3))
    ranked = rank_starts(target, [random_start, *cands], EAD, cfg, keep=2)
    assert len(ranked) == 2 and not np.array_equal(ranked[0], random_start)
    out = reconstruct_batch([target], EAD, cfg, starts=[ranked[:1]])[0]
    assert out.converged and out.steps <= 5
    rms = MATCHER.get_rms_dist(as_structure(out), crystals()["SrTiO3"])
    assert rms is not None and rms[0] < 0.01


def test_cli_templates_then_reconstruct_from_them(tmp_path, capsys) -> None:
    """`templates` reads a split from --data-dir; `reconstruct --templates` starts from it."""
    import gzip

    from tests.test_reconstruct import REP, _summary

    from structrepdiff.cli.main import main
    from structrepdiff.features import FeatureSet, save_features
    from structrepdiff.representation.encode import encode_structures

    rows = [("mp-1", perovskite("Ba", "Ti", "O", 4.0)), ("mp-2", perovskite("Ca", "Ti", "O", 3.8))]
    (tmp_path / "perov_5").mkdir()
    with gzip.open(tmp_path / "perov_5" / "val.csv.gz", "wt") as fh:
        import csv

        w = csv.writer(fh)
        w.writerow(["material_id", "cif"])
        w.writerows([i, s.to(fmt="cif")] for i, s in rows)
    tpl = tmp_path / "tpl.npz"
    args = ["templates", "--dataset", "perov_5", "--data-dir", str(tmp_path), "--out", str(tpl)]
    assert main([*args, "--no-progress"]) == 0
    assert "2 templates from perov_5/val" in capsys.readouterr().out
    assert main([*args, "--no-progress"]) == 2  # no overwrite without --force
    R = encode_structures([crystals()["SrTiO3"]], REP)
    npz = tmp_path / "R.npz"
    save_features(FeatureSet(R, ["SrTiO3"], REP), npz)
    out = tmp_path / "rec"
    rec = ["reconstruct", "--representations", str(npz), "--out", str(out), "--no-progress"]
    assert main([*rec, "--templates", str(tpl), "--trials", "1", "--hops", "1"]) == 0
    (row,) = _summary(out)
    assert row["status"] == "converged" and int(row["steps"]) <= 5
    assert '"templates": "' in (out / "reconstruct_config.json").read_text()
