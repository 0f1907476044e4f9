"""One source of truth for settings: every CLI option that names a config field has the
dataclass's default, and the default reconstruction budget follows the starts."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from structrepdiff.cli.main import build_parser
from structrepdiff.composition.train import CompositionTrainConfig
from structrepdiff.diffusion.denoisers import DenoiserConfig
from structrepdiff.evaluate.run import EvaluateConfig
from structrepdiff.evaluate.stability import StabilityConfig
from structrepdiff.pipeline.featurize import FeaturizeConfig
from structrepdiff.pipeline.generate import GenerateConfig
from structrepdiff.pipeline.sample import SampleConfig
from structrepdiff.pipeline.train import TrainConfig
from structrepdiff.plots import PlotConfig
from structrepdiff.reconstruct.config import TEMPLATE_BUDGET, ReconstructConfig
from structrepdiff.reconstruct.run import ReconstructJob
from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.run import RelaxJob
from structrepdiff.report import ReportConfig

# command -> [(config class, {cli dest: field} for options named differently; "-": another
# class's field of the same name, e.g. generate's --steps are Adam steps, not DDIM steps)]
RECON = (ReconstructConfig, {})
RELAX = (RelaxConfig, {"relax_steps": "max_steps", "relax_device": "device"})
SAMPLE = (SampleConfig, {"sample_steps": "steps"})
CASES = {
    ("featurize",): [(FeaturizeConfig, {})],
    ("train",): [(TrainConfig, {"denoiser": "-"}), (DenoiserConfig, {"denoiser": "kind"})],
    ("train-composition",): [(CompositionTrainConfig, {})],
    ("sample",): [SAMPLE],
    ("generate",): [
        (SampleConfig, {"sample_steps": "steps", "sample_batch_size": "batch_size", "steps": "-"}),
        RECON,
        RELAX,
        (GenerateConfig, {}),
    ],
    ("reconstruct",): [RECON, (ReconstructJob, {"templates": "-"}),
                       (GenerateConfig, {"batch_size": "-"})],
    ("relax",): [RELAX, (RelaxJob, {})],
    ("evaluate", "generation"): [(EvaluateConfig, {})],
    ("evaluate", "reconstruction"): [(EvaluateConfig, {})],
    ("evaluate", "stability"): [(StabilityConfig, {})],
    ("report",): [(ReportConfig, {})],
    ("plot", "gallery"): [(PlotConfig, {"limit": "gallery_limit"})],
    ("plot", "histograms"): [(PlotConfig, {"split": "data_split"})],
    ("plot", "recon-loss"): [(PlotConfig, {"threshold": "loss_line"})],
}
# options whose dataclass default is not the CLI's on purpose
SKIP = {("generate", "batch_size"), ("generate", "seed"), ("train", "dropout"),
        ("train", "T")}  # fmt: skip
# generate's --batch-size is the reconstruction batch (GenerateConfig.batch_size) and its one
# --seed seeds both stages; train's --dropout and --T feed DenoiserConfig and TrainConfig
# alike (checked below against both)


def _sub(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _field_defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _norm(v):
    return tuple(v) if isinstance(v, list) else v


@pytest.mark.parametrize("path", list(CASES), ids=" ".join)
def test_cli_defaults_are_the_dataclass_defaults(path):
    parser = _sub(build_parser(), path)
    checked = 0
    for cls, renames in CASES[path]:
        fields = _field_defaults(cls)
        for action in parser._actions:
            field = renames.get(action.dest, action.dest)
            if (path[0], action.dest) in SKIP or field not in fields or not action.option_strings:
                continue
            if action.default is None and field not in renames:
                continue  # an optional input (no default) mapped onto a field
            if action.nargs == 0:  # a flag: absent means the dataclass default False
                assert fields[field] in (False, None), (path, action.dest)
                continue
            assert _norm(action.default) == _norm(fields[field]), (path, action.dest)
            checked += 1
    assert checked >= 1


def test_train_dropout_and_T_agree_with_both_configs():
    parser = _sub(build_parser(), ("train",))
    opts = {a.dest: a.default for a in parser._actions}
    den = _field_defaults(DenoiserConfig)
    assert opts["dropout"] == den["dropout"]
    assert opts["T"] == TrainConfig.T == den["T"]


def test_reconstruct_options_replace_the_budget_that_follows_the_starts():
    from structrepdiff.cli.reconstruct_cmd import reconstruct_overrides
    from structrepdiff.reconstruct.config import SymmetricConfig
    from structrepdiff.reconstruct.starts import budget

    parser = _sub(build_parser(), ("reconstruct",))
    args = parser.parse_args(["--representations", "x.npz", "--out", "o"])
    assert args.templates == "auto" and reconstruct_overrides(args) == {}
    assert budget(True, overrides=reconstruct_overrides(args)) == TEMPLATE_BUDGET
    assert budget(False) == ReconstructConfig() and budget(True, True) == SymmetricConfig()
    args = parser.parse_args(["--representations", "x.npz", "--out", "o", "--trials", "2",
                              "--lr", "0.2", "0.01"])  # fmt: skip
    over = reconstruct_overrides(args)
    assert over == {"trials": 2, "lr_start": 0.2, "lr_end": 0.01}
    assert budget(True, overrides=over) == dataclasses.replace(TEMPLATE_BUDGET, **over)
    text = " ".join(parser.format_help().split())
    assert (f"default: {TEMPLATE_BUDGET.trials} with templates, {ReconstructConfig().trials} "
            f"from random positions, {SymmetricConfig().trials} inside a space group") in text


def test_no_literal_default_in_the_command_line():
    """Every default of an option is read from its owner (a config dataclass or the library
    constant it uses), never written in cli/: an empty list is the only literal allowed."""
    import re
    from pathlib import Path

    import structrepdiff.cli as cli

    found = []
    for path in sorted(Path(cli.__file__).parent.glob("*.py")):
        text = path.read_text()
        for m in re.finditer(r"default=(-?[0-9.]|\"|'|\((?!\))|Path\(|\[(?!\]))", text):
            found.append(f"{path.name}: {text[m.start():m.start() + 40]}")
    assert found == []


def test_one_default_preset_everywhere():
    parser = build_parser()
    featurize = {a.dest: a.default for a in _sub(parser, ("featurize",))._actions}
    train = {a.dest: a.default for a in _sub(parser, ("train",))._actions}
    assert featurize["preset"] == train["preset"] == FeaturizeConfig.preset == TrainConfig.preset
    assert FeaturizeConfig.preset == "small"


def test_library_errors_name_parameters_and_the_cli_says_flags(tmp_path, capsys):
    from structrepdiff.cli.main import as_flags, main

    with pytest.raises(ValueError, match="`cif` needs `elements_from`"):
        FeaturizeConfig(out=tmp_path / "x.npz", cif=("a.cif",))
    assert main(["featurize", "--cif", "a.cif", "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert "--cif needs --elements-from" in err and "`" not in err
    assert as_flags("pass `force`=True; `batch_size` >= 1; use `device`=cpu") == (
        "pass --force; --batch-size >= 1; use --device cpu")  # fmt: skip


def test_library_errors_never_name_a_flag():
    """Library messages name parameters (in backticks); only cli/ turns them into flags
    (`as_flags`), so an API user is never told to pass --something."""
    import ast
    import re
    from pathlib import Path

    import structrepdiff

    root = Path(structrepdiff.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if "cli" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            for sub in ast.walk(node.exc):
                if (isinstance(sub, ast.Constant) and isinstance(sub.value, str)
                        and re.search(r"(^|[\s(])--[a-z]", sub.value)):  # fmt: skip
                    found.append(f"{path.relative_to(root)}:{sub.lineno}: {sub.value[:60]}")
    assert found == []
