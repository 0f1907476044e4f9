"""Evaluate generated or reconstructed crystals against a dataset split (behind
`structrepdiff evaluate`), writing ``metrics.json`` and a per-crystal CSV.

Generation (CDVAE protocol, docs/evaluation.md): validity, COV-R / COV-P with CDVAE's and the
paper's thresholds against the whole reference split, EMD of density and of the number of
elements between a seeded draw of ``n_property`` valid crystals and the whole split, plus
uniqueness, novelty against a training split, P1 fraction and space-group histogram.

Reconstruction: each prediction is matched to the split crystal with the same id by
``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``. ``match_rate`` follows CDVAE (an
invalid prediction is a non-match); ``match_rate_any`` ignores validity, which is what the
StructRepDiff paper's numbers and our Table 1 report.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from structrepdiff.data.atomic import atomic_write
from structrepdiff.data.io import load_split, split_path
from structrepdiff.data.predictions import Prediction, load_predictions
from structrepdiff.data.registry import outside_dataset
from structrepdiff.data.run_folder import METRICS, PER_CRYSTAL, SUMMARY, evaluation_dir
from structrepdiff.evaluate.coverage import (
    COV_CUTOFF_SETS,
    coverage,
    nearest_reference_distances,
)
from structrepdiff.evaluate.novelty import first_of_class, novelty, uniqueness
from structrepdiff.evaluate.parallel import parallel_map
from structrepdiff.evaluate.properties import property_emd, sample_valid
from structrepdiff.evaluate.result import count_reasons
from structrepdiff.evaluate.suite import (
    cached_reference,
    evaluate_rows,
    reference_table,
    unstack_fps,
)

PROTOCOL = "CDVAE (Xie et al. 2021), as specified in docs/evaluation.md"


@dataclass(frozen=True)
class EvaluateConfig:
    """One evaluation. ``out`` defaults to ``<pred>/evaluation_<mode>`` for a folder and
    ``<pred stem>_evaluation_<mode>`` beside a file. ``novelty_split`` None: "train" when the
    dataset has it, else "val" (recorded in metrics.json); "" skips novelty."""

    pred: Path
    dataset: str
    mode: str = "generation"
    split: str = "test"
    out: Path | None = None
    data_dir: str | None = None
    novelty_split: str | None = None
    n_property: int = 1000
    seed: int = 0
    workers: int | None = None
    cache_dir: Path | None = None
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("generation", "reconstruction"):
            raise ValueError(f"mode must be generation or reconstruction, got {self.mode!r}")
        if self.n_property < 1:
            raise ValueError("n_property must be at least 1")

    def out_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        p = Path(self.pred)
        name = evaluation_dir(self.mode)
        if p.is_dir():
            return p / name
        stem = p.name.split(".")[0]
        return p.parent / f"{stem}_{name}"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("structrepdiff", "pymatgen", "matminer", "smact", "numpy", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _pct(flags) -> float:
    flags = list(flags)
    return round(100.0 * sum(bool(f) for f in flags) / len(flags), 4) if flags else float("nan")


def coverage_metrics(rows: list[dict], ref: dict[str, np.ndarray], dataset: str) -> dict:
    """COV-R / COV-P (percent) for each threshold set, with the thresholds used. Adds to each
    row its nearest-reference distances (``struct_nn_dist``, ``comp_nn_dist``) and whether it
    counts for COV-P under each set (``cov_p_cdvae``, ``cov_p_paper``)."""
    gs, gc = [r["struct_fp"] for r in rows], [r["comp_fp"] for r in rows]
    rs, rc = unstack_fps(ref["struct_fp"]), unstack_fps(ref["comp_fp"])
    s_nn, c_nn = nearest_reference_distances(gs, gc, rs, rc)
    for r, s, c in zip(rows, s_nn, c_nn, strict=True):
        r["struct_nn_dist"] = None if np.isnan(s) else round(float(s), 6)
        r["comp_nn_dist"] = None if np.isnan(c) else round(float(c), 6)
    out = {}
    for name, table in COV_CUTOFF_SETS.items():
        cut = table[dataset]
        for r, s, c in zip(rows, s_nn, c_nn, strict=True):
            r[f"cov_p_{name}"] = bool(s <= cut.struct and c <= cut.comp)  # NaN → False
        cov = coverage(gs, gc, rs, rc, cut.struct, cut.comp)
        out[name] = {
            "struct_cutoff": cut.struct,
            "comp_cutoff": cut.comp,
            "cov_recall_pct": round(100 * cov["cov_recall"], 4),
            "cov_precision_pct": round(100 * cov["cov_precision"], 4),
            **{k: cov[k] for k in cov if k.startswith(("amsd", "amcd", "n_"))},
        }
    return out


def property_metrics(rows: list[dict], ref: dict[str, np.ndarray], n: int, seed: int) -> dict:
    """EMD of density (g/cm³) and of the number of elements: seeded draw of ``n`` valid
    generated crystals against every reference crystal; also returns the drawn indices."""
    draw = sample_valid([r["valid"] for r in rows], n, seed)
    picked = [rows[i] for i in draw.indices]
    ref_d, ref_e = ref["density"], ref["n_elements"]
    return {
        "n_valid": draw.n_valid,
        "n_drawn": len(draw.indices),
        "n_requested": n,
        "complete": draw.complete,
        "seed": seed,
        "emd_density": property_emd([r["density"] for r in picked], ref_d[np.isfinite(ref_d)]),
        "emd_n_elements": property_emd(
            [r["n_elements"] for r in picked], ref_e[np.isfinite(ref_e)]
        ),
        "indices": draw.indices.tolist(),
    }


def generation_metrics(rows: list[dict], ref: dict[str, np.ndarray], dataset: str,
                       n_property: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """Validity, coverage and property EMDs of evaluated rows (see `evaluate_rows`)."""
    props = property_metrics(rows, ref, n_property, seed)
    return {
        "n_generated": len(rows),
        "n_with_structure": sum(r["n_atoms"] is not None for r in rows),
        "struct_validity_pct": _pct(r["struct_valid"] for r in rows),
        "comp_validity_pct": _pct(r["comp_valid"] for r in rows),
        "validity_pct": _pct(r["valid"] for r in rows),
        "coverage": coverage_metrics(rows, ref, dataset),
        "properties": props,
        "reasons": {
            "structure": count_reasons(r["struct_reason"] for r in rows),
            "composition": count_reasons(r["comp_reason"] for r in rows),
            "fingerprint": count_reasons(r["fp_reason"] for r in rows),
        },
    }


def symmetry_and_novelty(rows: list[dict], preds: list[Prediction], novelty_ref: list | None,
                         workers: int | None = 1, progress: bool = False
                         ) -> dict[str, Any]:  # fmt: skip
    """Uniqueness (among generated structures), novelty (against ``novelty_ref``), P1
    fraction and space-group histogram; adds ``unique`` / ``novel`` to each row."""
    structs = [p.structure for p in preds]
    t0 = time.perf_counter()
    uni = uniqueness(structs)
    seconds = {"uniqueness": round(time.perf_counter() - t0, 2)}
    for r, flag in zip(rows, first_of_class(uni["labels"]), strict=True):
        r["unique"] = flag
    out: dict[str, Any] = {
        "uniqueness_pct": round(100 * uni["uniqueness"], 4),
        "n_unique": uni["n_unique"],
    }
    if novelty_ref is not None:
        t0 = time.perf_counter()
        nov = novelty(structs, novelty_ref, workers=workers, progress=progress)
        seconds["novelty"] = round(time.perf_counter() - t0, 2)
        for r, flag in zip(rows, nov["novel"], strict=True):
            r["novel"] = flag
        out.update(novelty_pct=round(100 * nov["novelty"], 4), n_novel=nov["n_novel"])
        both = [r["unique"] and r["novel"] for r in rows if r["unique"] is not None]
        out["unique_and_novel_pct"] = _pct(both)
    numbers = [r["spacegroup"] for r in rows if r["spacegroup"] is not None]
    hist = Counter(numbers)
    out.update(
        p1_pct=round(100 * hist.get(1, 0) / len(numbers), 4) if numbers else float("nan"),
        n_spacegroup_analysed=len(numbers),
        spacegroup_histogram={str(k): v for k, v in sorted(hist.items())},
        spacegroup_reasons=count_reasons(r["spacegroup_reason"] for r in rows),
        seconds=seconds,
    )
    return out


CSV_FIELDS = (
    "id", "valid", "struct_valid", "struct_reason", "comp_valid", "comp_reason", "fp_reason",
    "formula", "n_atoms", "n_elements", "density", "spacegroup", "spacegroup_symbol",
    "spacegroup_reason", "in_property_sample", "unique", "novel", "struct_nn_dist",
    "comp_nn_dist", "cov_p_cdvae", "cov_p_paper",
)  # fmt: skip


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    """Rows (missing keys empty) to ``path`` atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fields, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: "" if r.get(k) is None else r[k] for k in fields})

    atomic_write(path, write, force=True, suffix=".csv")


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON to ``path`` atomically."""
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=1, default=str)),
                 force=True, suffix=".json")  # fmt: skip


def _prepare_out(cfg: EvaluateConfig) -> Path:
    out = cfg.out_dir()
    if (out / METRICS).exists() and not cfg.force:
        raise FileExistsError(f"{out / 'metrics.json'} exists; pass `force`=True to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _reference(cfg: EvaluateConfig, split: str) -> tuple[list[Prediction], Path]:
    """The split's crystals as predictions (skipped rows logged by the loader) and its file."""
    path = split_path(cfg.data_dir, cfg.dataset, split)
    loaded = load_split(cfg.dataset, split, cfg.data_dir, progress=cfg.progress)
    preds = [Prediction(i, s) for i, s in zip(loaded.ids, loaded.structures, strict=True)]
    return preds, path


def _novelty_reference(cfg: EvaluateConfig) -> tuple[str | None, list | None]:
    if cfg.novelty_split == "":
        return None, None
    candidates = [cfg.novelty_split] if cfg.novelty_split else ["train", "val"]
    for split in candidates:
        try:
            preds, _ = _reference(cfg, split)
        except FileNotFoundError:
            if cfg.novelty_split:
                raise
            continue
        return split, [p.structure for p in preds]
    return None, None


def _header(cfg: EvaluateConfig, n_ref: int, ref_path: Path) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL,
        "mode": cfg.mode,
        "dataset": cfg.dataset,
        "reference_split": cfg.split,
        "reference_file": str(ref_path),
        "n_reference": n_ref,
        "pred": str(cfg.pred),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
        "versions": versions(),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
    }


def score_generation(preds: list[Prediction], cfg: EvaluateConfig
                     ) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """Metrics and per-crystal rows of ``preds`` against ``cfg``'s split, in memory (nothing
    is written; ``cfg.pred`` is only recorded)."""
    if not preds:
        raise ValueError(f"no predictions in {cfg.pred}")
    t0 = time.perf_counter()
    ref_path = split_path(cfg.data_dir, cfg.dataset, cfg.split)
    ref = cached_reference(ref_path, cfg.cache_dir)  # skips parsing the split when cached
    if ref is None:
        ref_preds, ref_path = _reference(cfg, cfg.split)
        ref = reference_table(ref_preds, ref_path, cfg.cache_dir, cfg.workers, cfg.progress)
    t_ref = time.perf_counter()
    rows = evaluate_rows(preds, cfg.workers, cfg.progress, desc="generated")
    t_rows = time.perf_counter()
    metrics = {**_header(cfg, len(ref["ids"]), ref_path),
               **generation_metrics(rows, ref, cfg.dataset, cfg.n_property, cfg.seed)}  # fmt: skip
    note = outside_dataset([p.structure for p in preds], cfg.dataset)
    if note:
        logging.getLogger(__name__).warning(note)
        metrics["dataset_warning"] = note
    t_dist = time.perf_counter()
    drawn = set(metrics["properties"].pop("indices"))
    for k, r in enumerate(rows):
        r["in_property_sample"] = k in drawn
    nov_split, nov_ref = _novelty_reference(cfg)
    metrics["novelty_split"] = nov_split
    t_nov = time.perf_counter()
    metrics.update(symmetry_and_novelty(rows, preds, nov_ref, cfg.workers, cfg.progress))
    # stages: reference table, per-crystal checks (validity, fingerprints, symmetry),
    # distribution metrics (COV, EMD), novelty reference, then uniqueness and novelty
    metrics["seconds"] = {"reference": round(t_ref - t0, 1),
                          "generated": round(time.perf_counter() - t_ref, 1),
                          "per_crystal": round(t_rows - t_ref, 2),
                          "distribution": round(t_dist - t_rows, 2),
                          "novelty_reference": round(t_nov - t_dist, 2),
                          **metrics.pop("seconds")}  # fmt: skip
    return metrics, rows


def evaluate_generation(cfg: EvaluateConfig) -> dict[str, Any]:
    """Score generated crystals (module docstring); writes metrics.json and per_crystal.csv
    into `EvaluateConfig.out_dir` and returns the metrics."""
    out = _prepare_out(cfg)
    metrics, rows = score_generation(load_predictions(cfg.pred), cfg)
    write_csv(out / PER_CRYSTAL, rows, CSV_FIELDS)
    write_json(out / METRICS, metrics)
    return metrics


def _match_pair(pair: tuple[Prediction, Any]) -> dict[str, Any]:
    """Validity and unfiltered match of one (prediction, true structure) pair."""
    from structrepdiff.evaluate.reconstruction import reconstruction_match
    from structrepdiff.evaluate.validity import composition_validity, structure_validity

    pred, true = pair
    row: dict[str, Any] = {"id": pred.id, "pred_reason": pred.reason}
    any_match = reconstruction_match(pred.structure, true, check_validity=False)
    row.update(matched_any=any_match.matched, rms=any_match.rms, match_reason=any_match.reason)
    if pred.structure is None:
        row.update(valid=False, invalid_reason=pred.reason or "no structure")
        return row
    checks = [structure_validity(pred.structure), composition_validity(pred.structure)]
    bad = [c.reason for c in checks if not c.value]
    row.update(valid=not bad, invalid_reason="; ".join(bad) or None)
    return row


def _crashed_pair(pair: tuple[Prediction, Any], why: str) -> dict[str, Any]:
    """The row of a pair whose matching killed its worker: no crystal, with the reason."""
    return _match_pair((Prediction(pair[0].id, None, why), pair[1]))


RECON_FIELDS = ("id", "matched", "matched_any", "rms", "valid", "invalid_reason",
                "match_reason", "pred_reason")  # fmt: skip


def evaluate_reconstruction(cfg: EvaluateConfig) -> dict[str, Any]:
    """Match each prediction to the split crystal with its id; writes metrics.json and
    per_crystal.csv. Predictions whose id is not in the split are an error."""
    out = _prepare_out(cfg)
    t0 = time.perf_counter()
    preds = load_predictions(cfg.pred)
    ref_preds, ref_path = _reference(cfg, cfg.split)
    truth = {p.id: p.structure for p in ref_preds}
    unknown = [p.id for p in preds if p.id not in truth]
    if unknown:
        raise ValueError(f"{len(unknown)} predictions have ids not in {cfg.dataset}/"
                         f"{cfg.split} (e.g. {', '.join(unknown[:3])})")  # fmt: skip
    pairs = [(p, truth[p.id]) for p in preds]
    rows = parallel_map(_match_pair, pairs, cfg.workers, cfg.progress, desc="match",
                        on_crash=_crashed_pair)  # fmt: skip
    for r in rows:
        r["matched"] = bool(r["matched_any"] and r["valid"])
    rms = [r["rms"] for r in rows if r["matched"]]
    rms_any = [r["rms"] for r in rows if r["matched_any"]]
    n = len(rows)
    metrics = {
        **_header(cfg, len(ref_preds), ref_path),
        "n_predictions": n,
        "n_reference_without_prediction": len(truth) - n,
        "match_rate_pct": round(100 * len(rms) / n, 4) if n else float("nan"),
        "rmse": float(np.mean(rms)) if rms else float("nan"),
        "match_rate_any_pct": round(100 * len(rms_any) / n, 4) if n else float("nan"),
        "rmse_any": float(np.mean(rms_any)) if rms_any else float("nan"),
        "validity_pct": _pct(r["valid"] for r in rows),
        "reasons": {
            "match": count_reasons(r["match_reason"] for r in rows),
            "invalid": count_reasons(r["invalid_reason"] for r in rows),
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_csv(out / PER_CRYSTAL, rows, RECON_FIELDS)
    write_json(out / METRICS, metrics)
    return metrics


@dataclass(frozen=True)
class Evaluation:
    """``metrics`` as in metrics.json; ``rows`` one dict per crystal as in per_crystal.csv."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]


def as_predictions(items: Sequence[Any], ids: Sequence[str] | None = None) -> list[Prediction]:
    """Predictions from pymatgen Structures, ase Atoms, objects with ``structure`` (and
    ``reason``) attributes such as generated crystals, or None (no crystal)."""
    from pymatgen.core import Structure

    if isinstance(items, Structure) or hasattr(items, "get_cell") or hasattr(items, "structure"):
        items = [items]  # one crystal, not a list of its sites
    if ids is not None and len(ids) != len(items):
        raise ValueError(f"`ids` has {len(ids)} entries for {len(items)} crystals")
    out = []
    for k, item in enumerate(items):
        rid = str(ids[k]) if ids is not None else getattr(item, "id", None) or str(k)
        reason = getattr(item, "reason", None)
        s = getattr(item, "structure", item)
        if s is not None and not isinstance(s, Structure) and hasattr(s, "get_cell"):
            s, reason = _from_atoms(s)
        if s is not None and not isinstance(s, Structure):
            s, reason = None, f"not a crystal: {type(s).__name__}"
        out.append(Prediction(rid, s, None if s is not None else reason or "no structure"))
    return out


def _from_atoms(atoms) -> tuple[Any, str | None]:
    """(Structure, None) of an ase Atoms, or (None, why): a cell of zero volume is no crystal."""
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        if abs(float(atoms.cell.volume)) < 1e-12:
            return None, "not a crystal: ase Atoms without a cell"
        return AseAtomsAdaptor.get_structure(atoms), None
    except Exception as exc:
        return None, f"not a crystal: {type(exc).__name__}: {exc}"


def evaluate_structures(structures: Sequence[Any], dataset: str, split: str = "test", *,
                        ids: Sequence[str] | None = None, novelty_split: str | None = None,
                        data_dir: str | None = None, n_property: int = 1000, seed: int = 0,
                        workers: int | None = 1, cache_dir: Path | None = None,
                        progress: bool = False) -> Evaluation:  # fmt: skip
    """CDVAE's generation metrics of in-memory crystals (see `as_predictions`) against
    ``dataset``'s ``split``, as `evaluate generation` computes them; nothing is written.
    ``novelty_split`` None: "train" when the dataset has it, else "val"; "" skips novelty."""
    cfg = EvaluateConfig(pred=Path("<in memory>"), dataset=dataset, split=split,
                         data_dir=data_dir, novelty_split=novelty_split, n_property=n_property,
                         seed=seed, workers=workers,
                         cache_dir=None if cache_dir is None else Path(cache_dir),
                         progress=progress)  # fmt: skip
    metrics, rows = score_generation(as_predictions(structures, ids), cfg)
    return Evaluation(metrics, rows)


def score_run_folder(folder: Path, clean: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Summary of a `reconstruct` / `generate` folder as the diagnostic studies report it:
    median and mean final loss, converged % (loss < ``threshold``), P1 %, structure validity
    %, and the StructureMatcher match % against ``clean`` (id → Structure) where given. An
    unreadable CIF counts as invalid (and as a miss against its clean crystal)."""
    from structrepdiff.data.io import parse_cif
    from structrepdiff.evaluate.reconstruction import reconstruction_match, reconstruction_matcher
    from structrepdiff.evaluate.symmetry import space_group
    from structrepdiff.evaluate.validity import structure_validity

    with open(Path(folder) / SUMMARY, newline="") as fh:
        rows = list(csv.DictReader(fh))
    loss = np.array([float(r["loss"]) for r in rows if r["loss"] not in ("", "nan")])
    matcher = reconstruction_matcher()
    p1 = valid = matched = n_sg = n_clean = unreadable = 0
    for r in rows:
        if not r.get("cif"):
            continue
        try:
            s = parse_cif((Path(folder) / r["cif"]).read_text())
        except ValueError:
            unreadable += 1
            n_clean += r["id"] in clean
            continue
        valid += bool(structure_validity(s).value)
        sg = space_group(s)
        n_sg += sg.ok
        p1 += sg.ok and sg.value[0] == 1
        if r["id"] in clean:
            n_clean += 1
            matched += reconstruction_match(s, clean[r["id"]], matcher,
                                            check_validity=False).matched  # fmt: skip
    n = len(rows)
    return {"n": n, "n_reconstructed": len(loss),
            "median_loss": float(np.median(loss)) if len(loss) else None,
            "mean_loss": float(loss.mean()) if len(loss) else None,
            "converged_pct": 100.0 * float((loss < threshold).sum()) / n if n else 0.0,
            "p1_pct": 100.0 * p1 / max(n_sg, 1), "struct_valid_pct": 100.0 * valid / max(n, 1),
            "match_clean_pct": 100.0 * matched / n_clean if n_clean else None,
            "n_unreadable_cif": unreadable}  # fmt: skip
