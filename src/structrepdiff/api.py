"""The Python surface: load a model, generate or predict crystals in memory, featurize and
evaluate structures. The CLI's file-based commands do the same work with files around it.

    import structrepdiff
    model = structrepdiff.load_model("perov_5")          # a bundled name, or a checkpoint path
    crystals = model.generate(4, seed=0)                  # list[Crystal], .structure a Structure
    result = structrepdiff.evaluate([c.structure for c in crystals], dataset="perov_5")

Same seed ⇒ the same crystals as ``structrepdiff generate --seed`` with the same settings: the
vectors are drawn in the same batches and every crystal is reconstructed from a generator
seeded by (seed, its id).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from structrepdiff.bundled import BUNDLED, MODELS_ENV, bundled_model_dir, model_path  # noqa: F401
from structrepdiff.data.run_folder import dedupe_ids
from structrepdiff.pipeline.checkpoint import LoadedModel, training_source
from structrepdiff.pipeline.featurize import FeaturizeConfig
from structrepdiff.pipeline.sample import (
    SampleConfig,
    draw_vectors,
    parse_space_group,
    sample_vectors,
)
from structrepdiff.reconstruct.config import JOB_BATCH_SIZE, JOB_DEVICE, ReconstructConfig
from structrepdiff.reconstruct.optimize import Outcome
from structrepdiff.reconstruct.run import (
    outcome_structure,
    reconstruct_targets,
    targets_from,
    with_symmetry,
)
from structrepdiff.reconstruct.starts import TEMPLATES_DEFAULT, default_budget, resolve_starts
from structrepdiff.reconstruct.symmetric import SymmetricConfig, SymTemplates
from structrepdiff.reconstruct.templates import TemplateSet
from structrepdiff.representation.condition import composition_condition
from structrepdiff.representation.decode import decode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Crystal:
    """One generated or predicted crystal. ``status``: converged, not_converged (the best fit
    found, loss above the threshold), rejected (the vector did not decode; no structure) or
    failed (reconstruction raised; no structure); ``reason`` says why for the last two.
    ``loss`` is the final relative L1 descriptor loss; ``space_group`` the group it was
    reconstructed in (None when reconstructed without one)."""

    id: str
    structure: Structure | None
    status: str
    loss: float | None = None
    steps: int = 0
    reason: str | None = None
    space_group: int | None = None

    @property
    def formula(self) -> str | None:
        return None if self.structure is None else self.structure.composition.reduced_formula

    def to_ase(self):
        """The crystal as an ``ase.Atoms`` (None without a structure)."""
        from pymatgen.io.ase import AseAtomsAdaptor

        return None if self.structure is None else AseAtomsAdaptor.get_atoms(self.structure)


MAX_PER_CALL = 100_000  # vectors one call draws at once (n × D float64 in memory)


def _count(name: str, n: Any, upper: int = MAX_PER_CALL) -> int:
    """``n`` as a count 1..upper; TypeError / ValueError naming the argument otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {type(n).__name__} {n!r}")
    if not 1 <= int(n) <= upper:
        raise ValueError(f"`{name}` must be in 1..{upper:,} per call, got {n}"
                         + ("; call again in chunks" if int(n) > upper else ""))  # fmt: skip
    return int(n)


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer, got {type(seed).__name__} {seed!r}")
    return int(seed)


def _formulas(formula: Any) -> list[str]:
    """A formula or a non-empty sequence of formulas as strings; TypeError otherwise."""
    items = [formula] if isinstance(formula, str) else formula
    if not isinstance(items, (list, tuple)) or not items or not all(
            isinstance(f, str) for f in items):  # fmt: skip
        raise TypeError(f"`formula` must be a formula string (e.g. 'SrTiO3') or a list of "
                        f"them, got {type(formula).__name__} {formula!r}")
    return list(items)


class Model:
    """A loaded model with its reconstruction settings; see `load_model`."""

    def __init__(self, loaded: LoadedModel, path: Path, templates: TemplateSet | None,
                 reconstruct: ReconstructConfig, sym_templates: SymTemplates | None = None,
                 symmetric: SymmetricConfig | None = None) -> None:  # fmt: skip
        self.loaded, self.path, self.templates, self.reconstruct_config = (
            loaded, path, templates, reconstruct)  # fmt: skip
        self.sym_templates = sym_templates
        self.symmetric_config = symmetric or SymmetricConfig()

    def __repr__(self) -> str:
        kind = "conditional" if self.loaded.conditional else "unconditional"
        starts = f"{len(self.templates)} templates" if self.templates else "random starts"
        return f"Model({self.path.name}, {kind}, {starts})"

    @property
    def dataset(self) -> str | None:
        """The dataset the model was trained on, as its checkpoint records it."""
        return training_source(self.loaded.ckpt).get("dataset")

    def sample_with_groups(self, n: int, seed: int = SampleConfig.seed,
                           formula: str | Sequence[str] | None = None,
                           guidance: float = SampleConfig.guidance,
                           steps: int = SampleConfig.steps,
                           space_group: int | str = SampleConfig.space_group,
                           batch_size: int = SampleConfig.batch_size
                           ) -> tuple[np.ndarray, list | None]:  # fmt: skip
        """(R (n, D), choices): each sample's (group, Wyckoff pattern) from the model's prior,
        or the reason none holds its composition; choices is None when ``space_group`` is
        "off" or the model carries no prior ("auto"). A number fixes the group (1 = P1)."""
        n, seed = _count("n", n), _seed(seed)
        _count("batch_size", batch_size, 1 << 20)
        formulas, known = self._known(formula, n)
        return draw_vectors(self.loaded, n, "ddim", steps, seed, batch_size, False, known,
                            guidance, parse_space_group(space_group), formulas)  # fmt: skip

    def _known(self, formula: str | Sequence[str] | None, n: int) -> tuple[list[str], Any]:
        """(formulas, the known composition features of ``n`` samples cycling over them);
        ([], None) without a formula."""
        if formula is None:
            return [], None
        formulas = _formulas(formula)
        return formulas, composition_condition(self.loaded.rep, formulas, n)

    def sample(self, n: int, seed: int = SampleConfig.seed,
               formula: str | Sequence[str] | None = None,
               guidance: float = SampleConfig.guidance, steps: int = SampleConfig.steps,
               batch_size: int = SampleConfig.batch_size,
               space_group: int | Sequence[int] | None = None) -> np.ndarray:  # fmt: skip
        """(n, D) vectors in R units (DDIM with ``steps``); ``formula`` fixes compositions
        (cycled), ``space_group`` (one, or one per sample; 0 = open) the group a
        group-conditioned model samples in."""
        n, seed = _count("n", n), _seed(seed)
        _count("batch_size", batch_size, 1 << 20)
        _, known = self._known(formula, n)
        groups = None
        if space_group is not None:
            groups = np.broadcast_to(np.asarray(space_group, dtype=int), (n,))
        return sample_vectors(self.loaded, n, "ddim", steps, seed, batch_size, known=known,
                              guidance=guidance, groups=groups)  # fmt: skip

    def reconstruct(self, R: np.ndarray, ids: Sequence[str] | None = None, seed: int = 0,
                    config: ReconstructConfig | None = None, batch_size: int = JOB_BATCH_SIZE,
                    progress: bool = False, groups: Sequence | None = None
                    ) -> list[Crystal]:  # fmt: skip
        """Crystals for the rows of ``R`` (n, D), in order; ids default to sample_000000, …
        With ``groups`` (per row a (space group, Wyckoff pattern) or a reason, as
        `sample_with_groups` gives them) each is reconstructed inside its group (on the CPU),
        else freely on the model's device (`load_model`'s ``device``)."""
        R = np.ascontiguousarray(np.atleast_2d(np.asarray(R, dtype=float)))
        if R.ndim != 2 or R.shape[1] != self.loaded.rep.layout.dim:
            raise ValueError(f"`R` must be (n, {self.loaded.rep.layout.dim}) for this model, "
                             f"got shape {R.shape}")  # fmt: skip
        seed = _seed(seed)
        _count("batch_size", batch_size, 1 << 20)
        if ids is not None and len(ids) != len(R):
            raise ValueError(f"`ids` has {len(ids)} entries for {len(R)} rows of `R`")
        ids = dedupe_ids([str(i) for i in ids] if ids is not None else _sample_ids(len(R)))
        default = self.reconstruct_config if groups is None else self.symmetric_config
        cfg = replace(config or default, seed=seed)
        templates = self.templates if groups is None else self.sym_templates
        pairs = targets_from(ids, decode(R, self.loaded.rep))
        if groups is not None:
            pairs = with_symmetry(pairs, list(groups))
        out: dict[str, Crystal] = {}
        todo = []
        for rid, t in pairs:
            if isinstance(t, str):
                out[rid] = Crystal(rid, None, "rejected", reason=t)
            else:
                todo.append(t)
        for o, _ in reconstruct_targets(todo, self.loaded.rep.ead, cfg, templates,
                                        batch_size, progress,
                                        device=self.loaded.device):  # fmt: skip
            out[o.id if isinstance(o, Outcome) else o[0]] = _crystal(o)
        return [out[i] for i in ids]

    def generate(self, n: int, seed: int = SampleConfig.seed,
                 guidance: float = SampleConfig.guidance,
                 sample_steps: int = SampleConfig.steps, progress: bool = False,
                 space_group: int | str = SampleConfig.space_group
                 ) -> list[Crystal]:  # fmt: skip
        """``n`` new crystals: compositions from the model (its composition model when it is
        conditional), a space group and Wyckoff pattern each from its prior (when it carries
        one; ``space_group`` as in `sample_with_groups`), structures sampled and
        reconstructed."""
        R, groups = self.sample_with_groups(n, seed, None, guidance, sample_steps, space_group)
        return self.reconstruct(R, seed=seed, progress=progress, groups=groups)

    def predict_structure(self, formula: str, n: int = 1, seed: int = SampleConfig.seed,
                          guidance: float = SampleConfig.guidance,
                          sample_steps: int = SampleConfig.steps, progress: bool = False,
                          space_group: int | str = SampleConfig.space_group
                          ) -> list[Crystal]:  # fmt: skip
        """``n`` candidate structures for ``formula`` (e.g. "SrTiO3" or "Sr2Ti2O6": the atom
        count follows the formula as written) — crystal-structure prediction. With a prior
        the k-th candidate is built in the prior's k-th most likely group and pattern."""
        _formulas(formula)  # None or a number is a TypeError, never random compositions
        R, groups = self.sample_with_groups(n, seed, formula, guidance, sample_steps,
                                            space_group)  # fmt: skip
        return self.reconstruct(R, seed=seed, progress=progress, groups=groups)


def _sample_ids(n: int) -> list[str]:
    return [f"sample_{k:06d}" for k in range(n)]


def _crystal(o: Outcome | tuple[str, str]) -> Crystal:
    if not isinstance(o, Outcome):
        return Crystal(o[0], None, "failed", reason=o[1])
    status = "converged" if o.converged else "not_converged"
    return Crystal(o.id, outcome_structure(o), status, float(o.loss), int(o.steps),
                   space_group=getattr(o, "sg", None))  # fmt: skip


def _templates(loaded: LoadedModel, templates, data_dir: str | None,
               symmetric: bool = False):  # fmt: skip
    """``templates``: "auto" (the model's training split: the crystals bundled with the
    model, else the data directory's, else random starts), "data" (the data directory's
    only), None / "none" (random starts), a TemplateSet or a path to a templates .npz
    (`reconstruct.starts.resolve_starts`). With ``symmetric``, the "auto" / "data" split on
    Wyckoff parameters (SymTemplates; None otherwise)."""
    if isinstance(templates, TemplateSet):
        return None if symmetric else templates
    if symmetric and not (isinstance(templates, str) and templates in ("auto", "data")):
        return None
    src = training_source(loaded.ckpt)
    path, used = resolve_starts(templates, src.get("dataset"), src.get("split"), symmetric,
                                loaded.ckpt.get("templates"), data_dir)  # fmt: skip
    if path is None:
        log.warning("%s", used)
        return None
    if symmetric:
        from structrepdiff.symmetry.analyze import load_description

        return SymTemplates(load_description(path))
    return TemplateSet.load(path)


def load_model(name_or_path: str | os.PathLike = "perov_5", device: str = JOB_DEVICE,
               templates: Any = TEMPLATES_DEFAULT, reconstruct: ReconstructConfig | None = None,
               data_dir: str | None = None, symmetric: SymmetricConfig | None = None
               ) -> Model:  # fmt: skip
    """A bundled model by name (``perov_5``, ``carbon_24``, ``mp_20``) or a checkpoint path.

    ``templates="auto"`` starts reconstruction from crystals of the model's training split
    (bundled with the model; else built once from the data directory and cached; "data" asks
    for the data directory's) with ``TEMPLATE_BUDGET``, the measured best setting; without
    either it falls back to random starts with the paper's budget
    (`ReconstructConfig()`, slower and less often converged) — the policy of
    `reconstruct.starts`, shared with the CLI. ``reconstruct`` overrides the budget either
    way. A model that carries a space-group prior reconstructs inside groups with
    ``symmetric`` (default `SymmetricConfig()`), starting from the training split on Wyckoff
    parameters too."""
    path = model_path(name_or_path)
    loaded = LoadedModel.load(path, device)
    tset = _templates(loaded, templates, data_dir)
    sym = _templates(loaded, templates, data_dir, True) if loaded.prior is not None else None
    cfg = reconstruct or default_budget(tset is not None)
    return Model(loaded, path, tset, cfg, sym, symmetric or default_budget(True, True))


def featurize(structures: Sequence[Structure], dataset: str = "mp_20",
              preset: str = FeaturizeConfig.preset, ids: Sequence[str] | None = None,
              dtype: str = FeaturizeConfig.dtype, batch_size: int = FeaturizeConfig.batch_size,
              progress: bool = False, device: str = JOB_DEVICE):  # fmt: skip
    """R vectors of in-memory structures with ``dataset``'s vocabulary and N_max: a
    `FeatureSet` (``R`` (n, D) in raw units, ``ids``, ``skipped`` with reasons, ``rep``).
    Structures that fail the checks of `featurize` files are skipped with a reason; the EAD
    is computed on ``device``."""
    from structrepdiff.data.io import check_structures
    from structrepdiff.data.registry import get_dataset
    from structrepdiff.descriptor.config import get_preset
    from structrepdiff.device import check_device
    from structrepdiff.features import FeatureSet
    from structrepdiff.pipeline.featurize import DTYPES, encode_loaded, stack_rows
    from structrepdiff.representation.encode import Representation

    info = get_dataset(dataset)
    rep = Representation(get_preset(preset), info.atomic_numbers, info.n_max)
    ids = [str(i) for i in ids] if ids is not None else [f"s{k}" for k in range(len(structures))]
    loaded = check_structures(list(structures), ids, info.atomic_numbers, info.n_max)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    rows, done, skipped = encode_loaded(loaded, rep, DTYPES[dtype], batch_size, progress,
                                        device=check_device(device))  # fmt: skip
    R = stack_rows(rows, rep)
    source = {"in_memory": len(structures), "dataset": dataset, "preset": preset}
    return FeatureSet(R, done, rep, loaded.skipped + skipped, source)
