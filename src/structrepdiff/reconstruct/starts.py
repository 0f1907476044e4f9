"""Which starts and which budget: the one policy `reconstruct`, `generate` and the Python API
share.

Starts are template crystals of the model's training split when they can be found (the ones
bundled with the model first, then the data directory's; `auto_templates`), else random
positions. The budget follows the starts: `TEMPLATE_BUDGET` with templates, the paper's
`ReconstructConfig()` from random positions, `SymmetricConfig()` inside space groups; any
setting given explicitly replaces the budget's.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from structrepdiff.reconstruct.config import TEMPLATE_BUDGET, ReconstructConfig, SymmetricConfig

TEMPLATES_DEFAULT = "auto"  # the default choice of starts everywhere
CHOICES = ("auto", "data", "none")  # besides a template file's path


def resolve_starts(choice: str | os.PathLike | None = TEMPLATES_DEFAULT,
                   dataset: str | None = None, split: str | None = None,
                   symmetric: bool = False, pack: dict | None = None,
                   data_dir: str | None = None) -> tuple[Path | None, str]:  # fmt: skip
    """(template file or None for random starts, what was used). ``choice``: "auto" (the
    training split of ``dataset``: the model's template ``pack``, the bundled model's, else
    the data directory's), "data" (the data directory's only), "none" / None (random), or a
    template file (.npz; a Wyckoff description .json when ``symmetric``)."""
    from structrepdiff.reconstruct.templates import auto_templates

    if choice is None or str(choice).lower() == "none":
        return None, "random starts (asked for)"
    if str(choice) not in ("auto", "data"):
        if symmetric and not str(choice).endswith(".json"):
            raise ValueError(f"templates {choice}: reconstruction inside space groups starts "
                             "from a split described on Wyckoff parameters (.json), 'auto' or "
                             "'none'; use space group off for .npz templates")  # fmt: skip
        _check_template_file(Path(choice), dataset)
        return Path(choice), f"the template file {choice}"
    return auto_templates(dataset, split, data_dir, symmetric=symmetric, pack=pack,
                          use_data=str(choice) == "data")  # fmt: skip


def _check_template_file(path: Path, dataset: str | None) -> None:
    """Warn (one line) when a .npz template file holds crystals ``dataset`` cannot hold."""
    import logging

    import numpy as np

    from structrepdiff.data.registry import outside_dataset_numbers

    if not dataset or path.suffix != ".npz" or not path.is_file():
        return
    try:
        with np.load(path, allow_pickle=False) as f:
            numbers = np.split(f["numbers"], np.cumsum(f["counts"])[:-1])
    except (OSError, KeyError, ValueError):
        return  # an unreadable file is reported where it is loaded
    note = outside_dataset_numbers(numbers, dataset, f"templates in {path.name}")
    if note:
        logging.getLogger(__name__).warning(note)


def default_budget(templates: bool, symmetric: bool = False) -> ReconstructConfig:
    """The measured default budget for these starts (module docstring)."""
    if symmetric:
        return SymmetricConfig()
    return TEMPLATE_BUDGET if templates else ReconstructConfig()


def budget(templates: bool, symmetric: bool = False,
           overrides: dict[str, Any] | None = None) -> ReconstructConfig:  # fmt: skip
    """`default_budget` with the settings in ``overrides`` (field: value; None values are
    "not given") replaced."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return replace(default_budget(templates, symmetric), **given)


def sample_facts(samples: str | os.PathLike) -> dict[str, Any]:
    """What a vector file says about its starts: ``dataset`` (the model's training set, or the
    vocabulary of featurized CIFs), ``split``, ``symmetric`` (each sample carries a group),
    ``pack`` (the template pack of the model that sampled it)."""
    from structrepdiff.features import load_features
    from structrepdiff.reconstruct.template_pack import checkpoint_pack

    src = load_features(samples).source
    return {"dataset": src.get("dataset") or src.get("elements_from"),
            "split": src.get("training_split"), "symmetric": src.get("symmetry") is not None,
            "pack": checkpoint_pack(src.get("model"))}  # fmt: skip


def starts_for(samples: str | os.PathLike, choice: str | os.PathLike | None = TEMPLATES_DEFAULT,
               overrides: dict[str, Any] | None = None, data_dir: str | None = None
               ) -> tuple[Path | None, ReconstructConfig, str]:  # fmt: skip
    """(template file or None, the budget, what was used) for the vectors in ``samples``."""
    f = sample_facts(samples)
    path, used = resolve_starts(choice, f["dataset"], f["split"], f["symmetric"], f["pack"],
                                data_dir)  # fmt: skip
    return path, budget(path is not None, f["symmetric"], overrides), used
