"""Stability of generated crystals (issue #13, deliverables 4–5): relax a seeded subset with the
universal potential, then score E_hull and S.U.N. against the cached reference hull, CDVAE's
Table 2 metrics before and after relaxation, and the energy-per-atom EMD against the test split.

``--pred`` is anything `load_predictions` reads (e.g. a Table 2 result's predictions.csv.gz,
or a peer's CDVAE CSV). ``--num`` crystals are drawn (seeded) from it, written as one CSV
into ``--work/<tag>/subset.csv.gz``, relaxed into ``--work/<tag>/relaxed`` (resumable) and
scored into ``--out/<tag>/``:

- ``metrics.json``: `evaluate stability` (MP-20 only: the one dataset with a reference hull);
- ``table2_before/`` and ``table2_after/`` (``--table2``): `evaluate generation` of the subset
  as drawn and as relaxed (a crystal the relaxation rejected or that diverged is invalid);
- ``energy_emd.json`` (``--energy-emd``): EMD between the potential's energy per atom of the
  generated crystals (before and after relaxation) and of the test split's DFT structures
  (single points, cached in ``--cache``) — the potential stands in for CDVAE's property model.

    python benchmarks/stability.py --dataset mp_20 --tag ours_mp_20 --num 200 --table2 \
        --pred benchmarks/results/generation/mp_20_cond_minsnr5/predictions.csv.gz
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from structrepdiff.data.io import read_cdvae_csv, split_path
from structrepdiff.data.predictions import load_predictions, save_predictions_csv
from structrepdiff.evaluate.properties import property_emd
from structrepdiff.evaluate.run import EvaluateConfig, evaluate_generation, write_json
from structrepdiff.evaluate.stability import StabilityConfig, evaluate_stability
from structrepdiff.relax.config import RelaxConfig
from structrepdiff.relax.run import RelaxJob, run_relax

KEYS = ("n", "n_with_e_hull", "stable_pct", "strict_stable_pct", "sun_pct", "sun_strict_pct",
        "mean_e_hull", "median_e_hull", "mean_rmsd", "unique_pct", "novel_pct")  # fmt: skip


def draw_subset(pred: Path, num: int, seed: int, path: Path) -> None:
    """Write ``num`` seeded predictions of ``pred`` (file order kept) to ``path`` once."""
    if path.exists():
        return
    preds = load_predictions(pred)
    pick = sorted(np.random.default_rng(seed).choice(len(preds), min(num, len(preds)),
                                                     replace=False))  # fmt: skip
    save_predictions_csv([preds[k] for k in pick], path)


def table2(dataset: str, pred: Path, out: Path, a: argparse.Namespace) -> dict:
    """CDVAE's generation metrics of ``pred`` against test (novelty against val)."""
    cfg = EvaluateConfig(pred=pred, dataset=dataset, split="test", out=out, data_dir=a.data_dir,
                         novelty_split="val", n_property=1000, seed=a.seed, workers=1,
                         force=True, progress=False)  # fmt: skip
    m = evaluate_generation(cfg)
    cov = m["coverage"]["cdvae"]
    return {"struct_validity_pct": m["struct_validity_pct"],
            "comp_validity_pct": m["comp_validity_pct"],
            "cov_recall_pct": cov["cov_recall_pct"], "cov_precision_pct": cov["cov_precision_pct"],
            "emd_density": m["properties"]["emd_density"],
            "emd_n_elements": m["properties"]["emd_n_elements"],
            "uniqueness_pct": m["uniqueness_pct"], "novelty_pct": m.get("novelty_pct"),
            "p1_pct": m["p1_pct"]}  # fmt: skip


def energy_emd(dataset: str, relaxed: Path, a: argparse.Namespace) -> dict:
    """Energy-per-atom EMD (eV/atom) of the generated crystals against the test split."""
    from structrepdiff.relax.hull_build import dataset_energies
    from structrepdiff.relax.potential import load_calculator, potential_version

    cfg = RelaxConfig()
    calc = load_calculator(cfg.potential, cfg.device)
    ref_rows = dataset_energies(dataset, ["test"], calc, cfg, a.cache, a.data_dir, False)
    ref = [float(r["energy_per_atom"]) for r in ref_rows
           if r["split"] == "test" and r.get("energy_per_atom")]  # fmt: skip
    with open(relaxed / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    before = [float(r["energy_before"]) for r in rows if r["energy_before"]]
    after = [float(r["energy_after"]) for r in rows if r["cif"] and r["energy_after"]]
    out = {"potential": f"{cfg.potential} {potential_version(cfg.potential)}",
           "reference": "single points on the test split's DFT structures",
           "n_reference": len(ref), "n_before": len(before), "n_after": len(after),
           "emd_before": property_emd(before, ref), "emd_after": property_emd(after, ref),
           "mean_reference": float(np.mean(ref)), "mean_after": float(np.mean(after))}  # fmt: skip
    df = read_cdvae_csv(split_path(a.data_dir, dataset, "test"))
    if "energy_per_atom" in df:  # Carbon-24's DFT energies are on another code's absolute scale,
        dft = df["energy_per_atom"].to_numpy(float)  # so compare shapes: both centred
        out["emd_reference_vs_dft_centred"] = property_emd(np.subtract(ref, np.mean(ref)),
                                                           dft - dft.mean())  # fmt: skip
        out["std_reference"], out["std_dft"] = float(np.std(ref)), float(dft.std())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mp_20")
    ap.add_argument("--pred", type=Path, required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--hull", type=Path,
                    help="reference hull (default: runs/hull/mp_20_<potential>_hull.json, built "
                         "with the same potential by benchmarks/hull_validation.py)")
    ap.add_argument("--potential", default=RelaxConfig.potential)
    ap.add_argument("--driver", default=RelaxConfig.driver)
    ap.add_argument("--relax-batch", type=int, default=RelaxConfig.batch_size)
    ap.add_argument("--relax-steps", type=int, default=RelaxConfig.max_steps)
    ap.add_argument("--symprec", type=float, default=RelaxConfig.symprec)
    ap.add_argument("--table2", action="store_true", help="Table 2 before and after relaxing")
    ap.add_argument("--energy-emd", action="store_true", help="energy-per-atom EMD vs test")
    ap.add_argument("--cache", type=Path, default=Path("runs/hull"), help="energies cache")
    ap.add_argument("--symmetric-steps", type=int, default=RelaxConfig().symmetric_steps,
                    help="FIRE steps of a first stage under FixSymmetry (relax's option)")
    ap.add_argument("--data-dir")
    ap.add_argument("--work", type=Path, default=Path("runs/stability"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/stability"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    work, res = a.work / a.tag, a.out / a.tag
    subset, relaxed = work / "subset.csv.gz", work / "relaxed"
    work.mkdir(parents=True, exist_ok=True)
    draw_subset(a.pred, a.num, a.seed, subset)
    t0 = time.perf_counter()
    cfg = RelaxConfig(potential=a.potential, symmetric_steps=a.symmetric_steps,
                      symprec=a.symprec, driver=a.driver, batch_size=a.relax_batch,
                      max_steps=a.relax_steps)  # fmt: skip
    a.hull = a.hull or Path(f"runs/hull/{a.dataset}_{a.potential}_hull.json")
    s = run_relax(RelaxJob(subset, relaxed, cfg, a.workers, progress=True))
    info = {"source": str(a.pred), "symmetric_steps": a.symmetric_steps,
            "relax_config": cfg.to_dict(),
            "seconds_relax_this_run": time.perf_counter() - t0,
            "relax_counts_this_run": s.counts}  # fmt: skip
    res.mkdir(parents=True, exist_ok=True)
    if a.dataset == "mp_20":  # the one dataset whose CSVs carry DFT formation energies
        m = evaluate_stability(StabilityConfig(relaxed, a.dataset, a.hull, res, a.data_dir,
                                               force=True))  # fmt: skip
        m.update(info)
        write_json(res / "metrics.json", m)
        print(json.dumps({k: m[k] for k in KEYS}), flush=True)
    if a.table2:
        rows = {
            "before": table2(a.dataset, subset, res / "table2_before", a),
            "after": table2(a.dataset, relaxed, res / "table2_after", a),
        }
        write_json(res / "table2.json", {**rows, **info, "n": a.num})
        print(json.dumps(rows), flush=True)
    if a.energy_emd:
        e = energy_emd(a.dataset, relaxed, a)
        write_json(res / "energy_emd.json", {**e, **info})
        print(json.dumps(e), flush=True)


if __name__ == "__main__":
    main()
