"""`structrepdiff evaluate generation|reconstruction|stability`: score crystals from any model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from structrepdiff.cli import codes
from structrepdiff.data.run_folder import METRICS, RELAXED_DIR, evaluation_dir
from structrepdiff.evaluate.run import EvaluateConfig
from structrepdiff.evaluate.stability import StabilityConfig

PRED_HELP = (
    "a folder of CIFs (or the output folder of `generate` / `reconstruct`, read through its "
    "summary.csv), an .extxyz file or a CDVAE-format CSV (material_id, cif)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score generated or reconstructed crystals (CDVAE protocol)",
        description="Writes metrics.json (protocol, counts, seed, thresholds, versions) and "
        "per_crystal.csv (every value and reason) into --out.",
    )
    modes = p.add_subparsers(dest="mode", required=True)
    gen = modes.add_parser(
        "generation",
        help="validity, COV-R/P, property EMD, uniqueness, novelty, space groups",
        description="Score generated crystals against a reference split. Reference "
        "fingerprints are cached (--cache-dir).",
    )
    _common(gen)
    gen.add_argument("--n-property", type=int, default=EvaluateConfig.n_property,
                     help="valid crystals drawn (seeded) for the property EMDs")  # fmt: skip
    nov = gen.add_mutually_exclusive_group()
    nov.add_argument("--novelty-split",
                     help="training split for novelty (default: train, else val)")  # fmt: skip
    nov.add_argument("--no-novelty", action="store_true", help="skip novelty")
    rec = modes.add_parser(
        "reconstruction",
        help="match rate and RMSE against the split crystals with the same ids",
        description="StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3). match_rate counts "
        "invalid predictions as non-matches (CDVAE); match_rate_any does not.",
    )
    _common(rec)
    st = modes.add_parser(
        "stability",
        help="energy above hull, stability and S.U.N. of relaxed crystals",
        description="Reads the output folder of `structrepdiff relax` (other crystals are "
        "relaxed first with relax's defaults) and a reference hull (the one that ships, or "
        "--hull); stable at E_hull < --threshold and "
        "at E_hull <= 0; novelty against every available split of the dataset.",
    )
    st.add_argument("--pred", required=True, type=Path,
                    help="output folder of `relax`; any other crystals (a CIF folder, a "
                    "`generate` folder, .extxyz, CSV) are relaxed first into OUT/relaxed")
    st.add_argument("--no-relax", action="store_true",
                    help="score crystals that are not a `relax` output as they are (single "
                    "points of the potential) instead of relaxing them first")  # fmt: skip
    st.add_argument("--dataset", required=True, help="mp_20, perov_5 or carbon_24")
    st.add_argument("--hull", type=Path,
                    help="reference hull JSON (default: the one that ships for --dataset; "
                    "`structrepdiff hull build` makes one)")  # fmt: skip
    st.add_argument("--novelty-splits", nargs="+", default=[],
                    help="splits for novelty (default: every split present)")  # fmt: skip
    st.add_argument("--threshold", type=float, default=StabilityConfig.threshold,
                    help="stable below this, eV/atom")  # fmt: skip
    st.add_argument("--out", type=Path, help="output folder (default: PRED/evaluation_stability)")
    st.add_argument("--data-dir", help="folder holding DATASET/SPLIT.csv[.gz]")
    st.add_argument("--workers", type=int, default=StabilityConfig.workers,
                    help="novelty (and relaxation) processes")  # fmt: skip
    st.add_argument("--scheduler", help="Dask workers instead of --workers: local:N or an address")
    st.add_argument("--force", action="store_true", help="overwrite an existing metrics.json")
    st.add_argument("--no-progress", action="store_true")
    st.set_defaults(func=run_stability)


def run_stability(args: argparse.Namespace) -> int:
    from structrepdiff.evaluate.stability import StabilityConfig, evaluate_stability, resolve_hull
    from structrepdiff.relax.config import RelaxConfig
    from structrepdiff.relax.run import ensure_relaxed

    out = args.out if args.out is not None else args.pred / evaluation_dir("stability")
    resolve_hull(args.hull, args.dataset)  # before relaxing: no hull, one line
    if (out / METRICS).exists() and not args.force:
        raise FileExistsError(f"{out / 'metrics.json'} exists; pass --force to overwrite")
    relax = RelaxConfig(max_steps=0) if args.no_relax else RelaxConfig()
    pred = ensure_relaxed(args.pred, out / RELAXED_DIR, relax, args.workers,
                          progress=not args.no_progress)  # fmt: skip
    cfg = StabilityConfig(pred=pred, dataset=args.dataset, hull=args.hull, out=out,
                          data_dir=args.data_dir, novelty_splits=tuple(args.novelty_splits),
                          threshold=args.threshold, workers=args.workers, force=args.force,
                          progress=not args.no_progress)  # fmt: skip
    from structrepdiff.cluster import open_client

    with open_client(args.scheduler):
        m = evaluate_stability(cfg)
    mean = "–" if m["mean_e_hull"] is None else f"{m['mean_e_hull']:.3f}"
    print(f"{m['n']} crystals ({m['n_with_e_hull']} with E_hull): stable "
          f"{m['stable_pct']:.1f} % (strict {m['strict_stable_pct']:.1f} %), S.U.N. "
          f"{m['sun_pct']:.1f} % (strict {m['sun_strict_pct']:.1f} %), mean E_hull {mean} "
          f"eV/atom -> {cfg.out_dir()}")  # fmt: skip
    if not m["n_with_e_hull"]:  # every crystal rejected or unrelaxed: nothing was scored
        print(f"no crystal could be scored (reasons: {m['reasons']})", file=sys.stderr)
        return codes.NOTHING
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", required=True, type=Path, help=PRED_HELP)
    p.add_argument("--dataset", required=True, help="mp_20, perov_5 or carbon_24")
    p.add_argument("--split", default=EvaluateConfig.split, help="reference split")
    p.add_argument("--out", type=Path, help="output folder (default: beside --pred)")
    p.add_argument("--data-dir", help="folder holding DATASET/SPLIT.csv[.gz]")
    p.add_argument("--seed", type=int, default=EvaluateConfig.seed)
    p.add_argument("--workers", type=int, help="processes (default: all cores)")
    p.add_argument("--scheduler", help="Dask workers instead of --workers: local:N or an address")
    p.add_argument("--cache-dir", type=Path, help="default $STRUCTREPDIFF_CACHE or ~/.cache")
    p.add_argument("--force", action="store_true", help="overwrite an existing metrics.json")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from structrepdiff.evaluate.run import (
        EvaluateConfig,
        evaluate_generation,
        evaluate_reconstruction,
    )

    novelty = "" if getattr(args, "no_novelty", False) else getattr(args, "novelty_split", None)
    cfg = EvaluateConfig(
        pred=args.pred, dataset=args.dataset, mode=args.mode, split=args.split, out=args.out,
        data_dir=args.data_dir, novelty_split=novelty,
        n_property=getattr(args, "n_property", 1000), seed=args.seed, workers=args.workers,
        cache_dir=args.cache_dir, force=args.force, progress=not args.no_progress,
    )  # fmt: skip
    from structrepdiff.cluster import open_client

    with open_client(args.scheduler):
        m = (evaluate_generation if cfg.mode == "generation" else evaluate_reconstruction)(cfg)
    if cfg.mode == "generation":
        cov = m["coverage"]
        print(f"{m['n_generated']} generated crystals vs {m['dataset']}/{m['reference_split']}"
              f": validity struct {m['struct_validity_pct']:.2f} %, comp "
              f"{m['comp_validity_pct']:.2f} %; COV-R/P (CDVAE) "
              f"{cov['cdvae']['cov_recall_pct']:.2f}/{cov['cdvae']['cov_precision_pct']:.2f} %"
              f", (paper) {cov['paper']['cov_recall_pct']:.2f}/"
              f"{cov['paper']['cov_precision_pct']:.2f} %; EMD density "
              f"{m['properties']['emd_density']:.4f}, #elements "
              f"{m['properties']['emd_n_elements']:.4f} ({m['properties']['n_drawn']} valid)"
              f" -> {cfg.out_dir()}")  # fmt: skip
    else:
        print(f"{m['n_predictions']} predictions: match {m['match_rate_pct']:.2f} % (RMSE "
              f"{m['rmse']:.4f}; invalid = non-match), {m['match_rate_any_pct']:.2f} % (RMSE "
              f"{m['rmse_any']:.4f}; validity ignored) -> {cfg.out_dir()}")  # fmt: skip
    return 0
