"""The bundled models: where they are found and what a name means.

A bundled model is one sampling-only checkpoint per dataset (`scripts/export_models.sh`) that
carries what its default decoding needs: the structure model, its composition model and
space-group priors, and the template crystals of its training split (`bundled_templates`).
"""

from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "STRUCTREPDIFF_MODELS"
BUNDLED = ("perov_5", "carbon_24", "mp_20")


def bundled_model_dir() -> Path:
    """Where bundled models live: ``$STRUCTREPDIFF_MODELS``, else the package's ``models``
    folder (package data, found through importlib.resources in a wheel and in a checkout)."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    from importlib.resources import files

    return Path(str(files("structrepdiff") / "models"))


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint path for ``name_or_path``: the file when it exists, else the bundled model
    of that name (`model_path`; FileNotFoundError if it is missing), else the path as given
    (the loader says it does not exist)."""
    path = Path(name_or_path)
    if not path.is_file() and str(name_or_path) in BUNDLED:
        return model_path(str(name_or_path))
    return path


def model_path(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file of a bundled model name (``perov_5``, ``carbon_24``, ``mp_20``) or
    of a path; a missing one raises FileNotFoundError naming where it looked."""
    name = str(name_or_path)
    if name in BUNDLED:
        path = bundled_model_dir() / f"{name}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"bundled model {name!r} not found at {path}; set "
                                    f"${MODELS_ENV} to the folder holding it")  # fmt: skip
        return path
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"model {name!r} is neither a bundled name "
                                f"({', '.join(BUNDLED)}) nor a checkpoint file")  # fmt: skip
    return path


def bundled_hull_path(dataset: str, potential: str = "chgnet") -> Path | None:
    """The reference hull that ships for ``dataset`` and ``potential`` (package data
    ``hulls/``: single points of the dataset's available splits with their DFT hull
    distances, built by `structrepdiff hull build`), or None."""
    from importlib.resources import files

    path = Path(str(files("structrepdiff") / "hulls" / f"{dataset}_{potential}_hull.json.gz"))
    return path if path.is_file() else None
