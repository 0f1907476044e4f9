"""Generation and structure prediction inside space groups (issue 26, deliverables 2, 6, 9):
the learned prior, the group of each sample, the bundled prior, one-line errors."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
import torch
from tests.test_api import tiny_data, tiny_env  # noqa: F401  (fixtures)
from tests.test_train import config, features  # noqa: F401  (fixture)

import structrepdiff
from structrepdiff.bundled import model_path
from structrepdiff.cli.main import main
from structrepdiff.evaluate.symmetry import space_group
from structrepdiff.reconstruct.candidates import point_group_order
from structrepdiff.symmetry.assign import assign_groups, choices_from_json, choices_to_json
from structrepdiff.symmetry.groups import pattern_problem
from structrepdiff.symmetry.learned import GroupClassifierConfig, LearnedPrior, load_prior

SRTIO3 = [38, 22, 8, 8, 8]
ITEMS = [  # three cubic perovskites and a tetragonal one
    (SRTIO3, 221, ((38, "a"), (22, "b"), (8, "c"))),
    ([56, 40, 8, 8, 8], 221, ((56, "a"), (40, "b"), (8, "c"))),
    ([20, 22, 8, 8, 8], 221, ((20, "a"), (22, "b"), (8, "c"))),
    ([56, 22, 8, 8, 8], 99, ((56, "a"), (22, "b"), (8, "b"), (8, "c"))),
]


@pytest.fixture(scope="module")
def prior() -> LearnedPrior:
    return LearnedPrior.fit(ITEMS, GroupClassifierConfig(steps=200, hidden=32, depth=1))


@pytest.fixture(scope="module")
def model_with_prior(prior, tmp_path_factory):
    """The bundled perov_5 model with this small prior bundled (export --space-group-prior)."""
    folder = tmp_path_factory.mktemp("m")
    torch.save(prior.state(), folder / "prior.pt")
    out = folder / "perov_prior.pt"
    assert main(["export", "--model", "perov_5", "--out", str(out),
                 "--space-group-prior", str(folder / "prior.pt")]) == 0  # fmt: skip
    return out


def test_the_learned_prior_proposes_patterns_that_hold_and_round_trips(prior, tmp_path):
    dist = prior.distribution(SRTIO3)
    assert dist[0][1] == 221 and sum(p for p, _, _ in dist) == pytest.approx(1.0)
    assert {sg for _, sg, _ in dist} >= {221, 99}
    for numbers in (SRTIO3, [11, 17], [26, 26, 8, 8, 8]):
        assert all(pattern_problem(sg, pat, numbers) is None
                   for _, sg, pat in prior.distribution(numbers))  # fmt: skip
    torch.save(prior.state(), tmp_path / "p.pt")
    again = load_prior(tmp_path / "p.pt")  # weights_only=True
    assert again.distribution(SRTIO3) == dist
    with pytest.raises(ValueError, match="not a space-group prior"):
        (tmp_path / "junk.pt").write_bytes(b"junk")
        load_prior(tmp_path / "junk.pt")


def test_groups_are_drawn_from_the_prior_ranked_for_formulas_or_fixed(prior):
    comps = [SRTIO3] * 3000
    drawn = assign_groups(prior, comps, "sample", seed=0)
    assert drawn == assign_groups(prior, comps, "sample", seed=0)  # same seed, same groups
    freq = Counter(drawn)
    for p, sg, pat in prior.distribution(SRTIO3)[:3]:  # frequencies follow the prior
        se = np.sqrt(p * (1 - p) / len(comps))
        assert abs(freq[(sg, pat)] / len(comps) - p) < 5 * se + 1e-3
    ranked = assign_groups(prior, [SRTIO3] * 3, "rank")
    assert ranked == [(sg, pat) for _, sg, pat in prior.distribution(SRTIO3)[:3]]
    fixed = assign_groups(prior, [SRTIO3, [22] * 5], "rank", space_group=225)
    assert isinstance(fixed[0], str) and "space group 225 cannot hold SrTiO3 with N = 5" in fixed[0]
    assert fixed[1] == "space group 225 cannot hold Ti5 with N = 5 (no Wyckoff pattern fits)"
    p1 = assign_groups(prior, [SRTIO3], "rank", space_group=1)
    assert p1[0][0] == 1 and pattern_problem(1, p1[0][1], SRTIO3) is None
    assert choices_from_json(choices_to_json(ranked + fixed)) == ranked + fixed


def _rows(out) -> list[dict]:
    with open(out / "summary.csv") as fh:
        return list(csv.DictReader(fh))


def test_generate_reconstructs_every_sample_inside_its_group(
    model_with_prior,
    tiny_env,  # noqa: F811
    tmp_path,
):
    args = ["generate", "--model", str(model_with_prior), "--num", "3", "--out",
            str(tmp_path / "g"), "--steps", "40", "--sample-steps", "10",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    rows = _rows(tmp_path / "g")
    assert len(rows) == 3 and all(r["space_group"] for r in rows)
    from pymatgen.core import Structure

    for r in rows:
        s = Structure.from_file(tmp_path / "g" / r["cif"])
        found = space_group(s).value[0]
        # built from orbits of the group: spglib finds the group or a supergroup, never less
        assert point_group_order(found) >= point_group_order(int(r["space_group"])), r
        assert found != 1


def test_the_api_predicts_the_prior_ranked_groups_and_repeats_with_the_seed(
    model_with_prior,
    prior,
    tiny_env,  # noqa: F811
):
    from structrepdiff.reconstruct.config import ReconstructConfig
    from structrepdiff.reconstruct.symmetric import SymmetricConfig

    model = structrepdiff.load_model(
        str(model_with_prior),
        reconstruct=ReconstructConfig(trials=1, hops=1, steps=30),
        symmetric=SymmetricConfig(trials=1, steps=30, random_starts=4),
    )
    cands = model.predict_structure("SrTiO3", n=2, seed=3, sample_steps=10)
    assert [c.space_group for c in cands] == [sg for _, sg, _ in prior.distribution(SRTIO3)[:2]]
    assert all(c.formula == "SrTiO3" for c in cands)
    again = model.predict_structure("SrTiO3", n=2, seed=3, sample_steps=10)
    assert [c.structure for c in again] == [c.structure for c in cands]
    free = model.predict_structure("SrTiO3", n=1, seed=3, sample_steps=10, space_group="off")
    assert free[0].space_group is None


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len([x for x in err if x.startswith("error: ")]) == 1 and "Traceback" not in err
    return next(x for x in err if x.startswith("error: "))


@pytest.mark.parametrize("extra, message", [
    (["--space-group", "231"], "space group 231 is not in 1–230"),
    (["--space-group", "cubic"], "space group must be auto, off or a number 1–230"),
    (["--formula", "Ti5", "--space-group", "225"], "space group 225 cannot hold Ti5 with N = 5"),
])  # fmt: skip
def test_a_group_that_cannot_be_used_is_one_line(model_with_prior, tmp_path, capsys, extra,
                                                 message):  # fmt: skip
    args = ["sample", "--model", str(model_with_prior), "--num", "2", "--out",
            str(tmp_path / "s.npz"), "--no-progress", *extra]  # fmt: skip
    assert main(args) == 2
    assert message in _one_line(capsys)
    assert not (tmp_path / "s.npz").exists()


def test_a_model_without_a_prior_refuses_a_fixed_group(tmp_path, capsys):
    ckpt = torch.load(model_path("perov_5"), weights_only=True)
    for key in ("space_group_prior", "space_group_prior_generation"):
        ckpt.pop(key, None)
    torch.save(ckpt, tmp_path / "no_prior.pt")
    args = ["sample", "--model", str(tmp_path / "no_prior.pt"), "--num", "1", "--out",
            str(tmp_path / "s.npz"), "--space-group", "191", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "carries no space-group prior" in _one_line(capsys)


def test_space_group_chi2_by_hand():
    from structrepdiff.evaluate.symmetry import space_group_chi2

    d = space_group_chi2({1: 2, "225": 2}, {225: 3, 221: 1})
    # (0.5 - 0.75)² / 0.75 + (0 - 0.25)² / 0.25; TV ½ (0.5 + 0.25 + 0.25)
    assert d["chi2"] == pytest.approx(0.0625 / 0.75 + 0.25) and d["tv"] == pytest.approx(0.5)
    assert space_group_chi2({}, {225: 1})["chi2"] != space_group_chi2({}, {225: 1})["chi2"]


def test_the_anchor_is_the_nearest_template_of_the_group_substituted():
    """Retrieval for SDEdit: the same group and anonymous pattern, nearest composition, its
    species replaced rank for rank; none for a group the training split lacks."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from tests.conftest import perovskite
    from tests.test_train import EAD

    from structrepdiff.pipeline.anchor import anchor_vectors, retrieve
    from structrepdiff.reconstruct.symmetric import SymTemplates
    from structrepdiff.representation.encode import Representation
    from structrepdiff.symmetry.analyze import describe

    train = [perovskite("Sr", "Ti", 3.9), perovskite("Ba", "Zr", 4.2)]
    tpl = SymTemplates([(f"t{k}", np.array(s.atomic_numbers), describe(s))
                        for k, s in enumerate(train)])  # fmt: skip
    numbers = [20, 22, 8, 8, 8]  # CaTiO3: nearer to SrTiO3 than to BaZrO3
    w = retrieve(tpl, numbers, 221, ((20, "a"), (22, "b"), (8, "c")))
    assert w.lattice[0] == pytest.approx(3.9)
    s = w.to_structure()
    assert sorted(s.atomic_numbers) == sorted(numbers)
    assert StructureMatcher(scale=False).fit(s, perovskite("Ca", "Ti", 3.9))
    assert retrieve(tpl, numbers, 99, ((20, "a"), (22, "b"), (8, "b"), (8, "c"))) is None
    anyg = retrieve(tpl, numbers)  # any group of the same anonymous formula (CSPML-like)
    assert anyg.sg == 221 and StructureMatcher(scale=False).fit(anyg.to_structure(), s)
    assert retrieve(tpl, [22, 22, 8]) is None  # no AB2 template
    rep = Representation(EAD, (8, 20, 22, 38, 40, 56), n_max=6)
    R, found = anchor_vectors(rep, tpl, [numbers, numbers], [(221, w.pattern), "no group"])
    assert found == [True, False] and np.isfinite(R[0]).all() and np.isnan(R[1]).all()


def test_a_prior_and_an_unconditional_model_are_refused_together(
    prior,
    tmp_path,
    capsys,
    features,  # noqa: F811
):
    from structrepdiff.pipeline.checkpoint import CheckpointError, LoadedModel
    from structrepdiff.pipeline.train import train

    torch.save(prior.state(), tmp_path / "prior.pt")
    uncond = train(config(tmp_path / "run", features, steps=2)).checkpoint
    assert main(["export", "--model", str(uncond), "--out", str(tmp_path / "x.pt"),
                 "--space-group-prior", str(tmp_path / "prior.pt")]) == 2  # fmt: skip
    assert "goes with a conditional structure model" in _one_line(capsys)
    ckpt = torch.load(uncond, weights_only=True)
    torch.save({**ckpt, "space_group_prior": prior.state()}, tmp_path / "forged.pt")
    with pytest.raises(CheckpointError, match="do not go together"):
        LoadedModel.load(tmp_path / "forged.pt")


def test_one_prior_ranks_formulas_and_another_draws_for_sampled_compositions(
    prior,
    tmp_path,
    capsys,
    monkeypatch,
):
    """export --generation-prior: `generate --formula` ranks with the space-group prior,
    sampled compositions draw their groups from the generation prior; alone it is refused."""
    import structrepdiff.symmetry.assign as assign
    from structrepdiff.pipeline.checkpoint import LoadedModel
    from structrepdiff.pipeline.sample import sample_with_groups

    other = LearnedPrior.fit(ITEMS[::-1], GroupClassifierConfig(steps=50, hidden=16, depth=1))
    torch.save(prior.state(), tmp_path / "rank.pt")
    torch.save(other.state(), tmp_path / "draw.pt")
    out = tmp_path / "two.pt"
    assert main(["export", "--model", "perov_5", "--out", str(out),
                 "--space-group-prior", str(tmp_path / "rank.pt"),
                 "--generation-prior", str(tmp_path / "draw.pt")]) == 0  # fmt: skip
    loaded = LoadedModel.load(out)
    assert loaded.prior.distribution(SRTIO3) == prior.distribution(SRTIO3)
    assert loaded.generation_prior.distribution(SRTIO3) == other.distribution(SRTIO3)
    assert loaded.prior.distribution(SRTIO3) != other.distribution(SRTIO3)
    used = []
    real = assign.assign_groups
    monkeypatch.setattr(assign, "assign_groups",
                        lambda p, *a, **k: used.append(p) or real(p, *a, **k))  # fmt: skip
    from structrepdiff.representation.condition import composition_row

    known = (loaded.cond_mask, composition_row(loaded.rep, "SrTiO3")[None])
    sample_with_groups(loaded, 1, steps=2, known=known)  # structure prediction: ranked
    sample_with_groups(loaded, 1, steps=2)  # a sampled composition: drawn
    assert used == [loaded.prior, loaded.generation_prior]
    single = LoadedModel.load("mp_20")  # one bundled prior does both
    assert single.generation_prior is single.prior is not None
    ckpt = torch.load(model_path("perov_5"), weights_only=True)
    ckpt.pop("space_group_prior")
    torch.save(ckpt, tmp_path / "no_prior.pt")
    assert main(["export", "--model", str(tmp_path / "no_prior.pt"), "--out",
                 str(tmp_path / "x.pt"), "--generation-prior", str(tmp_path / "draw.pt")]) == 2
    assert "goes with a space-group prior" in _one_line(capsys)
