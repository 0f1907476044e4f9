"""Space groups inside reconstruction (issue #26): Wyckoff orbit maps, the crystal-system
lattice, symmetric reconstruction. Oracles: spglib (the group of a built crystal), gradcheck in
float64, pymatgen's StructureMatcher, hand-known prototypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from structrepdiff.descriptor.config import get_preset
from structrepdiff.geometry.cell import matrix_to_params
from structrepdiff.reconstruct.optimize import true_targets
from structrepdiff.reconstruct.symmetric import (
    Start,
    SymmetricConfig,
    SymTarget,
    _layout,
    positions_and_cell,
    reconstruct_symmetric,
    symmetric_loss,
    too_close,
)
from structrepdiff.representation.encode import Representation
from structrepdiff.symmetry.groups import (
    centering_matrix,
    centering_order,
    crystal_system,
    group_orbits,
    pattern_problem,
)
from structrepdiff.symmetry.lattice import free_from_params, lattice_candidates

# one or more groups of every crystal system and every centering (P A C I F R)
GROUPS = (1, 2, 4, 12, 15, 19, 38, 62, 63, 71, 88, 123, 141, 148, 160, 166, 176, 186, 194,
          198, 216, 221, 225, 227, 229)  # fmt: skip


def _random_lattice(sg: int, rng) -> np.ndarray:
    a, b, c = rng.uniform(4.0, 7.0, 3)
    al, be, ga = rng.uniform(70, 110, 3)
    system = crystal_system(sg)
    return {"triclinic": [a, b, c, al, be, ga], "monoclinic": [a, b, c, 90, be, 90],
            "orthorhombic": [a, b, c, 90, 90, 90], "tetragonal": [a, a, c, 90, 90, 90],
            "trigonal": [a, a, c, 90, 90, 120], "hexagonal": [a, a, c, 90, 90, 120],
            "cubic": [a, a, a, 90, 90, 90]}[system]  # fmt: skip


def _build(sg: int, pattern, xyz: np.ndarray, lattice, primitive: bool = True) -> Structure:
    """A pymatgen crystal of ``pattern`` with free vectors xyz, built with numpy only (an
    oracle independent of the torch layout)."""
    conv = Lattice.from_parameters(*lattice).matrix
    T = centering_matrix(sg) if primitive else np.eye(3)
    c = centering_order(sg) if primitive else 1
    species, cart = [], []
    for (z, letter), p in zip(pattern, xyz, strict=True):
        orb = group_orbits(sg)[letter]
        sites = orb.sites(p)[: orb.multiplicity // c]
        species += [z] * len(sites)
        cart.append(sites @ conv)
    return Structure(Lattice(T @ conv), species, np.concatenate(cart), coords_are_cartesian=True)


@pytest.mark.parametrize("sg", GROUPS)
def test_every_orbit_has_exactly_the_groups_symmetry(sg):
    """spglib finds exactly ``sg`` for the general orbit at random parameters, with one
    special orbit (of another species) added where the group has one with free parameters."""
    rng = np.random.default_rng(sg)
    orbits = group_orbits(sg)
    general = max(orbits.values(), key=lambda o: o.multiplicity).letter
    pattern = [(8, general), (26, general), (14, general)]
    special = [o.letter for o in orbits.values() if 0 < o.dof < 3]
    if special:
        pattern.append((26, special[0]))
    s = _build(sg, pattern, rng.random((len(pattern), 3)), _random_lattice(sg, rng))
    assert len(s) * centering_order(sg) == sum(orbits[x].multiplicity for _, x in pattern)
    assert SpacegroupAnalyzer(s, symprec=1e-3).get_space_group_number() == sg


@pytest.mark.parametrize("sg", (12, 71, 166, 225))
def test_the_orbit_sites_are_distinct_in_the_primitive_cell(sg):
    """The first m / centering sites of each orbit are distinct modulo the primitive lattice,
    and the rest are their centering copies."""
    T = centering_matrix(sg)
    p = np.array([0.13, 0.29, 0.41])
    for orb in group_orbits(sg).values():
        f = orb.sites(p) @ np.linalg.inv(T)
        f -= np.floor(f + 1e-9)
        m = orb.multiplicity // centering_order(sg)
        head = np.round(f[:m], 6) % 1.0
        assert len({tuple(r) for r in head}) == m
        for row in np.round(f[m:], 6) % 1.0:
            assert any(np.allclose(row, h, atol=1e-5) for h in head)


def _loss_layout(sg, pattern, lattice, rep, seed=0):
    s = _build(sg, pattern, np.random.default_rng(seed).random((len(pattern), 3)), lattice)
    (t,), _, _ = true_targets(["x"], [s], rep)
    return SymTarget(t, sg, tuple(pattern)), s


@pytest.fixture(scope="module")
def rep():
    return Representation(get_preset("small"), (8, 11, 17, 22, 26, 38, 56), n_max=10)


def test_gradients_through_orbits_and_lattice_pass_gradcheck(rep):
    """d(loss)/d(xyz, θ) in float64 (descriptor + lattice terms), Wyckoff maps and the
    tetragonal I lattice included."""
    st, _ = _loss_layout(139, [(26, "e"), (8, "g")], [4.0, 4.0, 9.0, 90, 90, 90], rep)
    lay = _layout([st], torch.float64)
    xyz = torch.tensor([[0.0, 0.0, 0.31], [0.0, 0.5, 0.12]], dtype=torch.float64,
                       requires_grad=True)  # fmt: skip
    theta = torch.tensor(free_from_params(139, np.array([4.1, 4.1, 8.7, 90, 90, 90])),
                         dtype=torch.float64)[None].requires_grad_(True)  # fmt: skip
    cfg = SymmetricConfig(dtype="float64")
    _, cell = positions_and_cell(xyz, theta, lay)
    from structrepdiff.symmetry.lattice import niggli_maps

    maps = niggli_maps(cell)

    def f(x, th):
        d, lat = symmetric_loss(x, th, lay, rep.ead, cfg, maps=maps)
        return d + 0.3 * lat

    assert torch.autograd.gradcheck(f, (xyz, theta), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_the_tie_map_keeps_the_system(rep):
    """Cells built from any θ have the system's form: a = b (tetragonal), 90°, 120°."""
    for sg, want in ((123, "tetragonal"), (194, "hexagonal"), (225, "cubic")):
        st, _ = _loss_layout(sg, [(26, "a")], [4.0, 4.0, 4.0, 90, 90, 120 if sg == 194 else 90],
                             rep)  # fmt: skip
        lay = _layout([st], torch.float64)
        theta = torch.randn(1, 6, dtype=torch.float64) * 0.2 + 1.5
        conv = torch.linalg.solve(lay.T, positions_and_cell(
            torch.zeros(1, 3, dtype=torch.float64), theta, lay)[1])  # fmt: skip
        a, b, c, al, be, ga = matrix_to_params(conv)[0].tolist()
        assert crystal_system(sg) == want
        assert a == pytest.approx(b) and al == pytest.approx(90) and be == pytest.approx(90)
        assert ga == pytest.approx(120 if want == "hexagonal" else 90)
        if want == "cubic":
            assert c == pytest.approx(a)


def test_lattice_candidates_find_the_conventional_cell():
    """The primitive rhombohedral cell of fcc (a' = a/√2, 60°) gives the cubic a; a hexagonal
    cell gives itself."""
    cands = lattice_candidates(225, np.array([4.0, 4.0, 4.0, 60, 60, 60]))
    assert cands[0][:3] == pytest.approx([4 * 2**0.5] * 3, rel=1e-6)
    cands = lattice_candidates(194, np.array([3.0, 3.0, 5.0, 90, 90, 120]))
    assert cands[0] == pytest.approx([3.0, 3.0, 5.0, 90, 90, 120], rel=1e-6)


ROCKSALT = ((11, "a"), (17, "b"))
PEROVSKITE = ((38, "a"), (22, "b"), (8, "c"))


def _prototype(kind: str) -> tuple[int, tuple, Structure]:
    if kind == "rocksalt":
        s = Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
        ).get_primitive_structure()
        return 225, ROCKSALT, s  # fmt: skip
    s = Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    return 221, ((38, "a"), (22, "b"), (8, "c")), s


@pytest.mark.parametrize("kind", ["rocksalt", "perovskite"])
def test_a_crystal_reconstructed_from_its_own_R_in_its_own_group_matches_it(kind, rep):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from structrepdiff.reconstruct.run import outcome_structure

    sg, pattern, s = _prototype(kind)
    (t,), _, _ = true_targets([kind], [s], rep)
    (o,) = reconstruct_symmetric([SymTarget(t, sg, pattern)], rep.ead,
                                 SymmetricConfig(random_starts=4, trials=2))  # fmt: skip
    pred = outcome_structure(o)
    assert o.converged and o.sg == sg
    assert StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3).fit(pred, s)
    assert SpacegroupAnalyzer(pred, symprec=0.01).get_space_group_number() == sg


def test_p1_comes_out_only_when_p1_was_chosen(rep):
    """A distorted perovskite target: reconstructed in P4mm the result keeps P4mm (or a
    supergroup), never P1; reconstructed in P1 (every atom its own 1a orbit) it may be P1."""
    s = Structure(Lattice.tetragonal(3.9, 4.1), ["Ba", "Ti", "O", "O", "O"],
                  [[0, 0, 0], [0.5, 0.5, 0.52], [0.5, 0.5, 0.97], [0.5, 0, 0.48],
                   [0, 0.5, 0.48]])  # fmt: skip
    (t,), _, _ = true_targets(["bto"], [s], rep)
    tet = SymTarget(t, 99, ((56, "a"), (22, "b"), (8, "b"), (8, "c")))
    p1 = SymTarget(t, 1, tuple((int(z), "a") for z in t.numbers))
    cfg = SymmetricConfig(random_starts=4, trials=1, steps=60)
    o_tet, o_p1 = reconstruct_symmetric([tet, p1], rep.ead, cfg)
    from structrepdiff.reconstruct.run import outcome_structure

    sg_tet = SpacegroupAnalyzer(outcome_structure(o_tet), symprec=1e-3).get_space_group_number()
    assert sg_tet >= 99 and sg_tet != 1
    assert o_p1.sg == 1 and len(o_p1.numbers) == 5


def test_same_seed_same_crystals(rep):
    sg, pattern, s = _prototype("perovskite")
    (t,), _, _ = true_targets(["p"], [s], rep)
    cfg = SymmetricConfig(random_starts=3, trials=1, steps=40)
    a = reconstruct_symmetric([SymTarget(t, sg, pattern)], rep.ead, cfg)[0]
    b = reconstruct_symmetric([SymTarget(t, sg, pattern)], rep.ead, cfg)[0]
    assert np.array_equal(a.positions, b.positions) and a.loss == b.loss


def test_bad_patterns_get_a_reason_not_a_crash(rep):
    _, _, s = _prototype("rocksalt")
    (t,), _, _ = true_targets(["nacl"], [s], rep)
    bad = [SymTarget(t, 225, ((11, "a"), (17, "a"))),  # 4a twice: no free parameter
           SymTarget(t, 225, ((11, "a"), (17, "c"))),  # 8c holds 2 Cl, not 1
           SymTarget(t, 225, ((11, "a"), (17, "zz"))),
           SymTarget(t, 231, ROCKSALT)]  # fmt: skip
    out = reconstruct_symmetric(bad, rep.ead, SymmetricConfig(random_starts=1, trials=1))
    assert all(isinstance(o, tuple) and o[0] == "nacl" for o in out)
    assert "one orbit only" in out[0][1] and "holds" in out[1][1]
    assert "no Wyckoff position zz" in out[2][1] and "1 to 230" in out[3][1]
    assert pattern_problem(225, ROCKSALT, t.numbers) is None
    assert pattern_problem(221, PEROVSKITE, [38, 22, 8, 8, 8]) is None


def test_a_given_start_is_used(rep):
    """A start at the true free vectors converges at once."""
    sg, pattern, s = _prototype("perovskite")
    (t,), _, _ = true_targets(["p"], [s], rep)
    start = Start(np.zeros((3, 3)), np.array([3.905, 3.905, 3.905, 90, 90, 90]), "given")
    (o,) = reconstruct_symmetric([SymTarget(t, sg, pattern)], rep.ead,
                                 SymmetricConfig(random_starts=0, trials=1), [[start]])  # fmt: skip
    assert o.converged and o.steps <= 5


def test_a_crystal_with_colliding_atoms_ranks_after_every_valid_one(rep):
    """Two starts for a tetragonal BaTiO3 target, barely descended: one with a Ti and an O on
    the same site (lower loss: the rest is right), one valid with two oxygens misplaced
    (higher loss). The loss alone picks the collision; `min_distance` picks the crystal."""
    from structrepdiff.evaluate.validity import structure_validity
    from structrepdiff.reconstruct.run import outcome_structure

    s = Structure(Lattice.tetragonal(3.9, 4.1), ["Ba", "Ti", "O", "O", "O"],
                  [[0, 0, 0], [0.5, 0.5, 0.52], [0.5, 0.5, 0.97], [0.5, 0, 0.48],
                   [0, 0.5, 0.48]])  # fmt: skip
    (t,), _, _ = true_targets(["bto"], [s], rep)
    st = SymTarget(t, 99, ((56, "a"), (22, "b"), (8, "b"), (8, "c")))
    lat = np.array([3.9, 3.9, 4.1, 90, 90, 90])
    clash = Start(np.array([[0, 0, 0], [0.5, 0.5, 0.52], [0.5, 0.5, 0.52], [0.5, 0, 0.48]]),
                  lat, "clash")  # fmt: skip
    off = Start(np.array([[0, 0, 0], [0.5, 0.5, 0.52], [0.5, 0.5, 0.75], [0.5, 0, 0.2]]),
                lat, "off")  # fmt: skip
    lay = _layout([st, st], torch.float64)
    X = torch.tensor(np.concatenate([clash.xyz, off.xyz]), dtype=torch.float64)
    th = torch.tensor(np.stack([free_from_params(99, lat)] * 2))
    assert too_close(X, th, lay, 0.5).tolist() == [True, False]
    assert not too_close(X, th, lay, 0.0).any()
    still = dict(random_starts=0, trials=2, steps=1, lr_start=1e-9, lr_end=1e-9,
                 prefit_steps=0, dtype="float64")  # fmt: skip
    (by_loss,) = reconstruct_symmetric([st], rep.ead, SymmetricConfig(**still, min_distance=0),
                                       [[clash, off]])  # fmt: skip
    (valid,) = reconstruct_symmetric([st], rep.ead, SymmetricConfig(**still), [[clash, off]])
    assert by_loss.loss < valid.loss  # the collision fits the target better ...
    assert not structure_validity(outcome_structure(by_loss)).value
    assert structure_validity(outcome_structure(valid)).value  # ... but is no crystal


def test_the_prior_only_proposes_patterns_that_hold_the_composition():
    """Seen anonymous formulas transfer their patterns (cation to cation); unseen ones back off
    to the enumerated combinations; every proposal holds the composition; JSON round trip."""
    from structrepdiff.symmetry.prior import SpaceGroupPrior

    prior = SpaceGroupPrior.fit([
        ([38, 22, 8, 8, 8], 221, ((38, "a"), (22, "b"), (8, "c"))),
        ([56, 22, 8, 8, 8], 99, ((56, "a"), (22, "b"), (8, "b"), (8, "c"))),
        ([11, 17], 225, ((11, "a"), (17, "b"))),
    ])  # fmt: skip
    for numbers in ([20, 14, 8, 8, 8], [3, 3, 8], [26, 26, 8, 8, 8], [12, 8]):
        dist = prior.distribution(numbers)
        assert dist, numbers
        assert sum(p for p, _, _ in dist) == pytest.approx(1.0)
        assert all(pattern_problem(sg, pat, numbers) is None for _, sg, pat in dist)
    top = prior.distribution([20, 14, 8, 8, 8])[0]
    assert top[1:] == (221, ((20, "a"), (14, "b"), (8, "c")))  # Ca on Sr's site
    again = SpaceGroupPrior.from_dict(prior.to_dict())
    assert again.distribution([12, 8]) == prior.distribution([12, 8])
    a = prior.sample([12, 8], 5, np.random.default_rng(3))
    assert a == prior.sample([12, 8], 5, np.random.default_rng(3))


@pytest.mark.parametrize("sg, counts", [(225, (1, 1)), (221, (1, 1, 3)), (62, (4, 4, 12)),
                                        (194, (2, 2)), (227, (2,)), (166, (1, 2)),
                                        (139, (1, 2, 4)), (229, (1, 3))])  # fmt: skip
def test_wyckoff_combinations_are_pyxtals_when_all_fit_and_fewest_orbits_come_first(sg, counts):
    """Independent oracle: pyxtal's list_wyckoff_combinations (conventional counts)."""
    from structrepdiff.symmetry.combos import wyckoff_combinations
    from structrepdiff.symmetry.groups import _group, centering_order

    ours = wyckoff_combinations(sg, counts, limit=500)
    combos, _, _ = _group(sg).list_wyckoff_combinations([n * centering_order(sg) for n in counts])
    theirs = {tuple(sorted((r, site.lstrip("0123456789")) for r, sites in enumerate(c)
                           for site in sites)) for c in combos or []}  # fmt: skip
    assert {tuple(sorted(c)) for c in ours} == theirs and len(ours) == len(set(ours))
    sizes = [len(c) for c in ours]
    assert sizes == sorted(sizes)
    numbers = [r + 1 for r, n in enumerate(counts) for _ in range(n)]
    assert all(pattern_problem(sg, tuple((r + 1, x) for r, x in c), numbers) is None
               for c in ours)  # fmt: skip
    assert wyckoff_combinations(sg, counts, limit=2) == ours[:2]


def test_a_composition_no_pattern_holds_gets_one_line():
    """Five Ti atoms fit no Wyckoff combination of Fm-3m's primitive cell (orbits of 1, 1, 2,
    6, … atoms): the candidate decoder names the formula and N instead of failing."""
    from structrepdiff.reconstruct.candidates import reconstruct_candidates
    from structrepdiff.reconstruct.optimize import Target
    from structrepdiff.symmetry.prior import SpaceGroupPrior

    prior = SpaceGroupPrior.fit([([11, 17], 225, ((11, "a"), (17, "b")))])
    t = Target("ti5", np.array([22] * 5), np.array([4.0, 4.0, 4.0, 60, 60, 60]),
               np.zeros(3), np.zeros(3), 2.0)  # fmt: skip
    (c,) = reconstruct_candidates([t], prior, SymmetricConfig(), None)
    assert c.best is None and c.outcomes == []
    assert c.reasons == ["no space group of the training prior holds Ti5 with N = 5"]
