"""Build a dataset's reference hull with a universal potential (issue #13, deliverable 2).

The public splits (val, test) are only part of the data that made the dataset's DFT hull, so
a hull of their potential energies alone would sit too high. Each dataset crystal therefore
adds two points: its potential formation energy, and a *virtual* point at its DFT formation
energy minus its DFT ``e_above_hull`` (the CSV's own hull, restored where the crystals that
built it are missing). Chemical potentials μ are fitted to the DFT formation energies
(`fitted_mu`), which removes the potential's per-element offset from DFT; an element outside
the fit takes the lowest energy per atom of its elemental crystals, else of simple prototypes
relaxed with the potential (ASE's reference state where `ase.build.bulk` builds it, fcc, bcc;
an upper bound on the true μ). Every source is recorded in the provenance.

Potential energies are single points of the dataset's DFT-relaxed structures, cached in
``<cache>/<dataset>_<potential>_energies.csv`` row by row (resumable). A crystal's potential
point carries its id, its virtual point ``<id>:dft_virtual`` (`virtual_id`), so either can be
left out of a hull.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Structure
from tqdm.auto import tqdm

from structrepdiff.data.io import parse_cif, read_cdvae_csv, split_path
from structrepdiff.data.registry import get_dataset
from structrepdiff.evaluate.hull import HullPoint, ReferenceHull, elemental_mu
from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.potential import corrected_energy, potential_version

ENERGY_FIELDS = ("id", "split", "formula", "n_atoms", "energy_per_atom", "e_form_dft",
                 "e_hull_dft", "reason")  # fmt: skip


HULL_SPLITS = ("val", "test")  # the splits of the shipped hull (train is not available here)


def single_point_energies(structures: Sequence[Structure], calculator, config: RelaxConfig,
                          batch_size: int = 32) -> list[float | None]:  # fmt: skip
    """Energy per atom (eV/atom, MP2020 scale) of each structure, None where the potential
    failed. CHGNet is batched; any other ASE calculator goes crystal by crystal."""
    model = getattr(calculator, "model", None)
    if config.potential == "chgnet" and model is not None and hasattr(model, "predict_structure"):
        out: list[float | None] = []
        for k in range(0, len(structures), batch_size):
            batch = list(structures[k : k + batch_size])
            try:
                preds = model.predict_structure(batch, task="e", batch_size=batch_size)
                preds = preds if isinstance(preds, list) else [preds]
                out.extend(float(np.asarray(p["e"]).reshape(-1)[0]) for p in preds)
            except Exception:  # one bad crystal spoils the batch: redo it one by one
                out.extend(_one_by_one(batch, calculator, config))
        return out
    return _one_by_one(structures, calculator, config)


def _one_by_one(structures, calculator, config) -> list[float | None]:
    from pymatgen.io.ase import AseAtomsAdaptor

    out = []
    for s in structures:
        try:
            atoms = AseAtomsAdaptor.get_atoms(s)
            atoms.calc = calculator
            e = corrected_energy(config.potential, s, float(atoms.get_potential_energy()))
            out.append(e / len(s))
        except Exception:  # the potential's own failure: no energy for this crystal
            out.append(None)
    return out


def dataset_energies(dataset: str, splits: Sequence[str], calculator, config: RelaxConfig,
                     cache: Path, data_dir=None, progress: bool = True) -> list[dict]:  # fmt: skip
    """Rows of ``ENERGY_FIELDS`` for every crystal of ``splits``, computed once into the
    cache CSV (resumable: rows already there are kept)."""
    path = Path(cache) / f"{dataset}_{config.potential}_energies.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if path.exists():
        with open(path, newline="") as fh:
            done = {(r["split"], r["id"]): r for r in csv.DictReader(fh)}
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ENERGY_FIELDS)
        if new:
            writer.writeheader()
        for split in splits:
            df = read_cdvae_csv(split_path(data_dir, dataset, split))
            todo = [
                r for r in df.itertuples(index=False) if (split, str(r.material_id)) not in done
            ]
            bar = tqdm(total=len(todo), disable=not progress, desc=f"energies {split}")
            for k in range(0, len(todo), 256):
                for row in _energy_rows(todo[k : k + 256], split, calculator, config):
                    writer.writerow(row)
                    done[(split, row["id"])] = row
                fh.flush()
                bar.update(len(todo[k : k + 256]))
            bar.close()
    return list(done.values())


def _energy_rows(rows, split, calculator, config) -> list[dict]:
    parsed, out = [], []
    for r in rows:
        try:
            parsed.append((r, parse_cif(r.cif)))
        except ValueError as exc:
            out.append({"id": str(r.material_id), "split": split, "reason": f"unparseable: {exc}"})
    energies = single_point_energies([s for _, s in parsed], calculator, config)
    for (r, s), e in zip(parsed, energies, strict=True):
        dft = {
            k: getattr(r, k, float("nan")) for k in ("formation_energy_per_atom", "e_above_hull")
        }
        out.append({"id": str(r.material_id), "split": split, "formula": s.composition.formula,
                    "n_atoms": len(s), "energy_per_atom": "" if e is None else f"{e:.6f}",
                    "e_form_dft": _num(dft["formation_energy_per_atom"]),
                    "e_hull_dft": _num(dft["e_above_hull"]),
                    "reason": "" if e is not None else "potential failed"})  # fmt: skip
    return out


def _num(x) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(x) else f"{x:.6f}"


def prototype_mu(element: str, calculator, config: RelaxConfig) -> float | None:
    """Lowest relaxed energy per atom of ``element`` over simple prototypes (ASE's reference
    state where `ase.build.bulk` builds it, fcc, bcc); None if none relaxed."""
    from ase.build import bulk
    from ase.data import atomic_numbers, covalent_radii
    from pymatgen.io.ase import AseAtomsAdaptor

    from structrepdiff.relax.core import relax_structure

    r = 1.1 * covalent_radii[atomic_numbers[element]]
    builders = [lambda: bulk(element), lambda: bulk(element, "fcc", a=2 * math.sqrt(2) * r),
                lambda: bulk(element, "bcc", a=4 * r / math.sqrt(3))]  # fmt: skip
    best = None
    for build in builders:
        try:
            s = AseAtomsAdaptor.get_structure(build())
        except Exception:  # ASE has no such prototype for this element
            continue
        res = relax_structure(s, calculator, config)
        if res.structure is not None and (best is None or res.energy_after < best):
            best = res.energy_after
    return best


def virtual_id(crystal_id: str) -> str:
    """Id of a crystal's virtual DFT point (its potential point has the crystal's own id)."""
    return f"{crystal_id}:dft_virtual"


def fitted_mu(rows: Sequence[dict]) -> dict[str, float]:
    """μ_el (eV/atom) that best map the potential onto DFT formation energies: the least-
    squares solution of E_pot/atom − E_form,DFT = Σ_el x_el μ_el over ``rows`` (those with a
    DFT formation energy). Elements that occur in no row get no μ."""
    rows = [r for r in rows if r.get("energy_per_atom") and r.get("e_form_dft")]
    comps = [Composition(r["formula"]).fractional_composition for r in rows]
    elements = sorted({str(el) for c in comps for el in c})
    if not rows:
        return {}
    col = {el: j for j, el in enumerate(elements)}
    X = np.zeros((len(rows), len(elements)))
    for i, c in enumerate(comps):
        for el, x in c.items():
            X[i, col[str(el)]] = x
    y = np.array([float(r["energy_per_atom"]) - float(r["e_form_dft"]) for r in rows])
    mu, *_ = np.linalg.lstsq(X, y, rcond=None)
    return {el: float(mu[col[el]]) for el in elements}


def build_reference_hull(dataset: str, calculator, config: RelaxConfig, cache: Path,
                         splits: Sequence[str] = HULL_SPLITS, data_dir=None,
                         elements: Sequence[str] | None = None,
                         fit_splits: Sequence[str] | None = None,
                         progress: bool = True) -> ReferenceHull:  # fmt: skip
    """The reference hull of ``dataset`` (see the module docstring).

    μ is fitted (`fitted_mu`) on the crystals of ``fit_splits`` (default: all ``splits``),
    which removes the potential's per-element offset from DFT; elements the fit does not
    cover take the lowest energy of their elemental crystals, else of relaxed prototypes
    (for ``elements``, default the dataset's vocabulary)."""
    rows = [r for r in dataset_energies(dataset, splits, calculator, config, cache, data_dir,
                                        progress) if r.get("energy_per_atom")]  # fmt: skip
    fit_on = set(splits if fit_splits is None else fit_splits)
    mu = fitted_mu([r for r in rows if r["split"] in fit_on])
    elemental = elemental_mu((Composition(r["formula"]), float(r["energy_per_atom"]))
                             for r in rows)  # fmt: skip
    from_elements = {el: e for el, e in elemental.items() if el not in mu}
    mu.update(from_elements)
    from_prototypes, missing = {}, []
    for el in get_dataset(dataset).elements if elements is None else elements:
        if el not in mu:
            e = prototype_mu(el, calculator, config)
            if e is None:
                missing.append(el)
            else:
                mu[el] = from_prototypes[el] = e
    points = []
    for r in rows:
        comp = Composition(r["formula"])
        if any(str(el) not in mu for el in comp):
            continue
        e_form = float(r["energy_per_atom"]) - sum(
            x * mu[str(el)] for el, x in comp.fractional_composition.items()
        )
        points.append(HullPoint(r["formula"], e_form, config.potential, r["id"]))
        if r["e_form_dft"] and r["e_hull_dft"]:
            points.append(HullPoint(r["formula"], float(r["e_form_dft"]) - float(r["e_hull_dft"]),
                                    "dft_virtual", virtual_id(r["id"])))  # fmt: skip
    provenance = {"dataset": dataset, "splits": list(splits),
                  "potential": potential_version(config.potential),
                  "energies": "single points of the dataset's DFT-relaxed structures",
                  "n_crystals": len(rows), "n_points": len(points),
                  "mu": f"least-squares fit to DFT formation energies of {sorted(fit_on)}; "
                        "elements outside the fit from elemental crystals or prototypes",
                  "mu_from_elemental_crystals": from_elements,
                  "mu_from_prototypes": from_prototypes, "elements_without_mu": missing,
                  "lacks": "the train split and the rest of Materials Project: only val/test "
                           "crystals and their DFT hull distances (virtual points)"}  # fmt: skip
    return ReferenceHull(mu, points, provenance)
