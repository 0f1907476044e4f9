"""Tests of the CDVAE-protocol metrics in structrepdiff.evaluate (hand-made crystals only)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from structrepdiff.evaluate import (
    COMP_FP_DIM,
    COMP_SCALER_MEANS,
    COMP_SCALER_STDS,
    STRUCT_FP_DIM,
    MatchResult,
    build_structure,
    composition_fingerprint,
    composition_fingerprint_raw,
    composition_validity,
    cov_cutoffs,
    coverage,
    density,
    evaluate_arrays,
    evaluate_crystal,
    n_elements,
    nearest_reference_distances,
    novelty,
    property_emd,
    reconstruction_match,
    reconstruction_metrics,
    sample_valid,
    space_group,
    space_group_stats,
    structure_fingerprint,
    structure_validity,
    uniqueness,
)


def rock_salt(a: float = 5.64) -> Structure:
    """Conventional NaCl rock salt, 8 atoms, Fm-3m."""
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3]
    )


def primitive_rock_salt() -> Structure:
    return rock_salt().get_primitive_structure()


def distorted_cell() -> Structure:
    """Na2Cl2 in a triclinic cell with generic positions: no symmetry beyond P1."""
    lattice = Lattice.from_parameters(4.1, 4.7, 5.3, 81.0, 97.0, 104.0)
    frac = [[0.03, 0.11, 0.07], [0.52, 0.38, 0.61], [0.27, 0.71, 0.33], [0.81, 0.93, 0.86]]
    return Structure(lattice, ["Na", "Na", "Cl", "Cl"], frac)


def moved_copy(s: Structure, seed: int = 0) -> Structure:
    """The same crystal rotated, translated and with its sites permuted."""
    rng = np.random.default_rng(seed)
    rot = Rotation.random(random_state=seed).as_matrix()
    lattice = Lattice(s.lattice.matrix @ rot.T)
    order = rng.permutation(len(s))
    frac = (s.frac_coords[order] + rng.uniform(0, 1, 3)) % 1.0
    return Structure(lattice, [s.species[i] for i in order], frac)


# --------------------------------------------------------------------------- structure validity


def test_rock_salt_is_structurally_valid():
    assert tuple(structure_validity(rock_salt())) == (True, None)


def test_close_atoms_are_invalid_with_distance_reason():
    s = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.06, 0, 0]])  # 0.3 Å
    valid, reason = structure_validity(s)
    assert valid is False
    assert "too close" in reason and "0.300 Å" in reason


def test_close_atoms_across_the_cell_boundary_are_invalid():
    s = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0.02, 0, 0], [0.98, 0, 0]])  # 0.2 Å
    valid, reason = structure_validity(s)
    assert valid is False and "0.200 Å" in reason


def test_tiny_volume_is_invalid_with_volume_reason():
    s = Structure(Lattice.cubic(0.4), ["C"], [[0, 0, 0]])  # 0.064 Å³
    valid, reason = structure_validity(s)
    assert valid is False and "volume" in reason


def test_self_images_are_not_checked_as_in_cdvae():
    # One atom, a = 0.45 Å: its own periodic image is closer than 0.5 Å, but CDVAE pads the
    # diagonal of the distance matrix, so only distinct sites are compared.
    s = Structure(Lattice.orthorhombic(0.45, 3.0, 3.0), ["C"], [[0, 0, 0]])
    assert structure_validity(s).value is True


def test_missing_structure_is_invalid_not_raised():
    valid, reason = structure_validity(None)
    assert valid is False and reason == "no structure"


def test_build_structure_reports_unbuildable_lattices():
    bad = build_structure([-1.0, 3.0, 3.0], [90, 90, 90], [[0, 0, 0]], [6])
    assert bad.value is None and bad.reason.startswith("non-positive lattice")
    nan = build_structure([3.0, np.nan, 3.0], [90, 90, 90], [[0, 0, 0]], [6])
    assert nan.value is None and "non-finite" in nan.reason
    good = build_structure([3.0, 3.0, 3.0], [90, 90, 90], [[0, 0, 0]], [6])
    assert good.ok and good.value.volume == pytest.approx(27.0)


# --------------------------------------------------------------------------- composition validity


@pytest.mark.parametrize(
    ("composition", "expected"),
    [
        ("NaCl", True),
        ("Na2Cl2", True),  # reduced by the gcd first
        ("NaCl2", False),
        ("CsPbI3", True),
        ("Fe3Ni", True),  # all metals
        ("C", True),  # single element
        ("SrTiO3", True),
        ("HeO", False),  # He has no SMACT-14 oxidation states
    ],
)
def test_smact_validity_known_cases(composition, expected):
    valid, reason = composition_validity(composition)
    assert valid is expected
    assert (reason is None) is expected


def test_composition_validity_accepts_atom_types_and_structures():
    assert composition_validity([11, 17, 11, 17]).value is True
    assert composition_validity(rock_salt()).value is True
    assert composition_validity({"Na": 1, "Cl": 2}).value is False


def test_invalid_compositions_say_why():
    assert composition_validity("NaCl2").reason.startswith("not charge balanced")
    # Na2Cl is neutral only as Na(-1) Cl(+2): the cation is the more electronegative one.
    assert composition_validity("Na2Cl").reason.startswith("fails Pauling test")
    assert composition_validity("Xx2O").value is False
    assert composition_validity({"Na": 0.5, "Cl": 0.5}).reason.startswith("non-integer")


def test_smact_2_2_1_quirks_used_by_cdvae():
    # Pm has no Pauling electronegativity: SMACT 2.2.1 raised TypeError in the cation/anion
    # comparison and CDVAE counted that as passing; current SMACT fails it.
    assert composition_validity("PmCl3").value is True
    assert composition_validity("PmCl3", legacy_smact=False).value is False
    # SMACT 2.2.1 had Zr's electronegativity as 0.33 (now 1.33): Zr(+3) beside Cs(-1) passes.
    assert composition_validity("Cs2ZrO").value is True
    assert composition_validity("Cs2ZrO", legacy_smact=False).value is False


# --------------------------------------------------------------------------- fingerprints


def test_composition_fingerprint_is_standardised_magpie():
    raw = composition_fingerprint_raw("NaCl").value
    fp = composition_fingerprint("NaCl").value
    assert raw.shape == fp.shape == (COMP_FP_DIM,)
    assert np.isfinite(fp).all()
    expected = (raw - np.array(COMP_SCALER_MEANS)) / np.array(COMP_SCALER_STDS)
    np.testing.assert_allclose(fp, expected, rtol=1e-12)


def test_missing_magpie_data_becomes_zero_after_scaling():
    raw = composition_fingerprint_raw("ArCl").value  # Ar lacks some Magpie properties
    fp = composition_fingerprint("ArCl").value
    assert np.isnan(raw).any()
    assert np.all(fp[np.isnan(raw)] == 0.0) and np.isfinite(fp).all()


def test_structure_fingerprint_of_rock_salt_is_octahedral():
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    labels = CrystalNNFingerprint.from_preset("ops").feature_labels()
    fp = structure_fingerprint(primitive_rock_salt()).value
    assert fp.shape == (STRUCT_FP_DIM,) and np.isfinite(fp).all()
    assert fp[labels.index("wt CN_6")] == pytest.approx(1.0)
    assert fp[labels.index("octahedral CN_6")] > 0.99


def test_fingerprint_failures_are_reasons():
    assert tuple(structure_fingerprint(None)) == (None, "no structure")
    bad = composition_fingerprint("Xx2O")
    assert bad.value is None and bad.reason


# --------------------------------------------------------------------------- coverage


def _random_fps(n: int, seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    return list(rng.uniform(0, 1, (n, STRUCT_FP_DIM))), list(rng.normal(0, 3, (n, COMP_FP_DIM)))


def test_coverage_of_a_set_against_itself_is_complete():
    s, c = _random_fps(30, 0)
    cov = coverage(s, c, s, c, struct_cutoff=0.4, comp_cutoff=10.0)
    assert cov["cov_recall"] == 1.0 and cov["cov_precision"] == 1.0
    assert cov["amsd_recall"] == 0.0 and cov["amcd_precision"] == 0.0


def test_coverage_precision_divides_by_all_generated():
    s, c = _random_fps(9, 1)
    cov = coverage([*s, None], [*c, None], s, c, struct_cutoff=0.4, comp_cutoff=10.0)
    assert cov["cov_recall"] == 1.0
    assert cov["cov_precision"] == pytest.approx(9 / 10)
    assert cov["n_generated"] == 10 and cov["n_generated_with_fp"] == 9


def test_coverage_needs_both_distances_within_cutoff():
    ref_s, ref_c = [np.zeros(3)], [np.zeros(2)]
    near_struct_far_comp = coverage([np.zeros(3)], [np.full(2, 10.0)], ref_s, ref_c, 0.4, 10.0)
    assert near_struct_far_comp["cov_recall"] == 0.0
    assert near_struct_far_comp["cov_precision"] == 0.0
    # CDVAE takes the two nearest distances independently: one generated crystal close in
    # structure and another close in composition together cover the reference.
    split = coverage(
        [np.zeros(3), np.ones(3)], [np.full(2, 10.0), np.zeros(2)], ref_s, ref_c, 0.4, 10.0
    )
    assert split["cov_recall"] == 1.0 and split["cov_precision"] == 0.0


def test_nearest_reference_distances_per_crystal_add_up_to_cov_p():
    gs, gc = _random_fps(25, 2)
    rs, rc = _random_fps(40, 3)
    gs[4], gc[7] = None, None  # no fingerprint: NaN, never counted
    s_nn, c_nn = nearest_reference_distances(gs, gc, rs, rc)
    assert np.isnan(s_nn[[4, 7]]).all() and np.isnan(c_nn[[4, 7]]).all()
    k = 11
    assert s_nn[k] == pytest.approx(min(np.linalg.norm(gs[k] - r) for r in rs))
    assert c_nn[k] == pytest.approx(min(np.linalg.norm(gc[k] - r) for r in rc))
    for q in (0.3, 0.6, 0.9):  # cutoffs that cover some but not all
        cut_s, cut_c = np.nanquantile(s_nn, q), np.nanquantile(c_nn, q)
        cov = coverage(gs, gc, rs, rc, cut_s, cut_c)
        hits = (s_nn <= cut_s) & (c_nn <= cut_c)
        assert 0 < hits.sum() < 23
        assert hits.sum() / len(gs) == pytest.approx(cov["cov_precision"])
    same_s, same_c = nearest_reference_distances(rs[:5], rc[:5], rs, rc)
    assert same_s.tolist() == [0.0] * 5 and same_c.tolist() == [0.0] * 5


def test_cov_cutoff_sets():
    assert (cov_cutoffs("mp_20").struct, cov_cutoffs("mp_20").comp) == (0.4, 10.0)
    assert (cov_cutoffs("perov_5").struct, cov_cutoffs("perov_5").comp) == (0.2, 4.0)
    paper = [cov_cutoffs(d, "paper") for d in ("mp_20", "carbon_24", "perov_5")]
    assert [(p.struct, p.comp) for p in paper] == [(0.6, 12.0), (1.0, 4.0), (0.8, 6.0)]
    with pytest.raises(ValueError, match="no COV cutoffs"):
        cov_cutoffs("qm9")


# --------------------------------------------------------------------------- properties


def test_property_emd():
    values = np.random.default_rng(0).normal(3.0, 1.0, 200)
    assert property_emd(values, values) == 0.0
    assert property_emd(values + 1.5, values) == pytest.approx(1.5)
    assert np.isnan(property_emd([], values))


def test_density_and_number_of_elements():
    assert density(rock_salt()) == pytest.approx(2.164, abs=0.005)  # g/cm³
    assert n_elements(rock_salt()) == 2


def test_seeded_draw_of_valid_crystals():
    valid = np.arange(5000) % 3 != 0
    a, b = sample_valid(valid, 1000, seed=7), sample_valid(valid, 1000, seed=7)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.complete and len(set(a.indices.tolist())) == 1000 and valid[a.indices].all()
    assert not np.array_equal(a.indices, sample_valid(valid, 1000, seed=8).indices)
    few = sample_valid(valid[:30], 1000, seed=np.random.default_rng(0))
    assert not few.complete and few.n_valid == 20 and len(few.indices) == 20


# --------------------------------------------------------------------------- reconstruction


def test_moved_copy_matches_with_zero_rms():
    s = distorted_cell()
    matched, rms, reason = reconstruction_match(moved_copy(s), s)
    assert matched is True and reason is None
    assert rms == pytest.approx(0.0, abs=1e-6)


def test_missing_or_invalid_prediction_is_a_non_match():
    assert tuple(reconstruction_match(None, rock_salt())) == (False, None, "no prediction")
    close = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.06, 0, 0]])
    result = reconstruction_match(close, close)
    assert not result.matched and result.reason.startswith("invalid prediction: atoms too close")
    # Without the validity check the same pair matches (it is the same crystal).
    assert reconstruction_match(close, close, check_validity=False).matched


def test_reconstruction_metrics_aggregate():
    results = [
        MatchResult(True, 0.1, None),
        MatchResult(True, 0.3, None),
        MatchResult(False, None, "no match"),
        MatchResult(False, None, "no prediction"),
    ]
    results.append(MatchResult(False, None, "invalid prediction: atoms too close: sites 0 and 1"))
    m = reconstruction_metrics(results)
    assert m["match_rate"] == 0.4 and m["rmse"] == pytest.approx(0.2)
    assert m["n"] == 5 and m["n_matched"] == 2
    assert m["reasons"] == {
        "no match": 1,
        "no prediction": 1,
        "invalid prediction: atoms too close": 1,
    }


# --------------------------------------------------------------------------- novelty, symmetry


def test_uniqueness_and_novelty():
    a, b = distorted_cell(), rock_salt()
    uniq = uniqueness([a, moved_copy(a, seed=3), b, None])
    assert uniq["n"] == 3 and uniq["n_unique"] == 2 and uniq["labels"] == [0, 0, 1, -1]
    nov = novelty([a, b, None], reference=[moved_copy(a, seed=4)])
    assert nov["novel"] == [False, True, None] and nov["novelty"] == 0.5


def test_novelty_over_worker_processes_equals_serial():
    a, b = distorted_cell(), rock_salt()
    gen = [a, b, None, moved_copy(b, seed=5), moved_copy(a, seed=6), b.copy().make_supercell(2)]
    ref = [moved_copy(a, seed=4), distorted_cell()]
    serial = novelty(gen, ref, workers=1)
    parallel = novelty(gen, ref, workers=2)
    assert parallel == serial
    assert serial["novel"] == [False, True, None, True, False, True]


def test_space_groups_and_p1_fraction():
    assert space_group(rock_salt()).value == (225, "Fm-3m")
    assert space_group(distorted_cell()).value[0] == 1
    stats = space_group_stats([rock_salt(), distorted_cell(), None])
    assert stats["p1_fraction"] == 0.5 and stats["histogram"] == {1: 1, 225: 1}
    assert stats["n_failed"] == 1 and stats["reasons"] == {"no structure": 1}


# --------------------------------------------------------------------------- whole crystal


def test_evaluate_crystal_as_cdvae():
    ok = evaluate_crystal(primitive_rock_salt())
    assert ok.valid and ok.struct_fp.shape == (STRUCT_FP_DIM,)
    assert ok.comp_fp.shape == (COMP_FP_DIM,)
    broken = evaluate_arrays([-2.0, 4.0, 4.0], [90, 90, 90], [[0, 0, 0], [0.5] * 3], [11, 17])
    assert broken.structure is None and not broken.valid
    assert broken.struct_reason.startswith("non-positive lattice")
    assert broken.comp_valid  # judged from the atom types, as CDVAE does
    assert broken.struct_fp is None and broken.comp_fp is None and broken.fp_reason


def test_evaluate_imports_no_model_code_and_matminer_lazily():
    code = (
        "import sys, structrepdiff.evaluate; "
        "bad = [m for m in sys.modules if m == 'matminer' or "
        "m.startswith(('structrepdiff.diffusion', 'structrepdiff.reconstruct', "
        "'structrepdiff.representation'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_novelty_and_uniqueness_split_one_formula_by_reduced_size_exactly() -> None:
    """Carbon-like sets share one formula: the primitive-size split must not lose matches."""
    from pymatgen.core import Lattice, Structure

    from structrepdiff.evaluate import novelty, uniqueness
    from structrepdiff.evaluate.novelty import _reduced_size

    diamond = Structure(Lattice.cubic(3.567), ["C"] * 8,
                        [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.25, .25, .25],
                         [.25, .75, .75], [.75, .25, .75], [.75, .75, .25]])  # fmt: skip
    third = 1 / 3
    graphite = Structure(Lattice.hexagonal(2.46, 6.7), ["C"] * 4,
                         [[0, 0, .25], [0, 0, .75], [third, 2 * third, .25],
                          [2 * third, third, .75]])  # fmt: skip
    supercell = diamond.copy()
    supercell.make_supercell([2, 1, 1])  # 16 sites, same crystal
    from pymatgen.analysis.structure_matcher import StructureMatcher

    m = StructureMatcher()
    assert _reduced_size(m, diamond) == _reduced_size(m, supercell) == 2
    assert _reduced_size(m, graphite) == 4
    u = uniqueness([diamond, graphite, supercell])
    assert u["n_unique"] == 2 and u["labels"] == [0, 1, 0]
    n = novelty([supercell, graphite], [diamond])
    assert n["novel"] == [False, True]
