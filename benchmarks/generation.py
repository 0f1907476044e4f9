"""Table 2 benchmark (issue #5): generate with a trained model, evaluate, record per-stage time.

For each ``--run DATASET=CHECKPOINT``: sample ``--num`` vectors (seeded), decode and
reconstruct them (`structrepdiff generate`, resumable) into ``--work/<dataset>``, then score
the crystals with `structrepdiff evaluate generation` against the test split, into
``--out/<dataset>_<tag>/`` (metrics.json, per_crystal.csv, timing.json, and the crystals
themselves as predictions.csv.gz, which `evaluate generation --pred` re-scores). Rerunning
resumes the reconstruction where it stopped; the wall time of every pass, stopped ones
included, is added up (a stopped pass's unfinished batch is counted and later redone). The models
here are trained on val (the public data has no train split), so novelty is measured against val.

    python benchmarks/generation.py --run perov_5=runs/perov_5/checkpoint.pt --num 1000 \
        --templates val --tag ddim100_tpl

``--reference DATASET ...`` scores ``--num`` seeded val crystals as if generated, against test
(the "data vs data" row, with the same sample count as the generated rows), into
``--out/reference_<dataset>_val<num>``.

``--peer NAME=DATASET=FILE ...`` scores ``--num`` seeded crystals of a peer's published samples
(a CDVAE-format CSV, e.g. ``../shared/peers/DiffCSP_mp_20/predictions.csv.gz``; ``--num 0``:
all of them) the same way, into ``--out/peer_<name>_<num>``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from generation_table import row
from structrepdiff.data.io import load_split
from structrepdiff.data.predictions import load_predictions, save_predictions_csv
from structrepdiff.evaluate.run import EvaluateConfig, evaluate_generation, write_json
from structrepdiff.evaluate.symmetry import space_group_chi2, space_group_stats
from structrepdiff.pipeline.checkpoint import LoadedModel
from structrepdiff.pipeline.generate import (
    GenerateConfig,
    check_settings,
    save_settings,
    write_extxyz,
)
from structrepdiff.pipeline.sample import SampleConfig, sample, uses_groups
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.reconstruct.run import ReconstructJob, run_reconstruction
from structrepdiff.reconstruct.symmetric import SymmetricConfig
from structrepdiff.reconstruct.templates import cached_templates_path
from structrepdiff.symmetry.analyze import cached_description_path


def load_timing(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"sampling": 0.0,
                                                                 "reconstruction": 0.0}  # fmt: skip


def generate_stage(cfg: GenerateConfig, timing: dict, timing_path: Path, limit: int | None
                   ) -> None:  # fmt: skip
    """Sample once, then reconstruct (resumable) the first ``limit`` samples (all if None),
    adding each stage's wall time to timing."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(cfg)  # a rerun with other settings is refused, not mixed in
    if not Path(cfg.sample.out).exists():
        t0 = time.perf_counter()
        sample(replace(cfg.sample, force=True))
        timing["sampling"] += time.perf_counter() - t0
        write_json(timing_path, timing)
    save_settings(cfg)
    t0 = time.perf_counter()
    job = ReconstructJob(cfg.sample.out, out, cfg.reconstruct, limit, cfg.batch_size, False,
                         cfg.progress, cfg.templates)  # fmt: skip
    try:  # a stopped pass (Ctrl-C, SIGTERM) still adds its time
        run_reconstruction(job)
        with open(out / "summary.csv", newline="") as fh:  # every pass, not just this one
            timing["reconstruction_counts"] = dict(Counter(r["status"] for r in csv.DictReader(fh)))
    finally:
        timing["reconstruction"] += time.perf_counter() - t0
        write_json(timing_path, timing)
    write_extxyz(out)


def spacegroup_vs_test(dataset: str, metrics: dict, a: argparse.Namespace) -> dict:
    """χ² and TV of the generated space-group histogram against the test split's (same
    symprec; the test histogram is cached in ``a.out``)."""
    path = a.out / f"test_spacegroups_{dataset}.json"
    if not path.exists():
        split = load_split(dataset, "test", a.data_dir)
        write_json(path, space_group_stats(split.structures)["histogram"])
    ref = json.loads(path.read_text())
    d = space_group_chi2(metrics.get("spacegroup_histogram", {}), ref)
    return {"spacegroup_chi2_vs_test": d["chi2"], "spacegroup_tv_vs_test": d["tv"]}


def run_one(dataset: str, ckpt: Path, a: argparse.Namespace) -> dict:
    work = a.work / f"{dataset}_{a.tag}"
    res = a.out / f"{dataset}_{a.tag}"
    res.mkdir(parents=True, exist_ok=True)
    timing_path = res / "timing.json"
    timing = load_timing(timing_path)
    scfg = SampleConfig(model=ckpt, out=work / "samples.npz", num=a.num, sampler=a.sampler,
                        steps=a.sample_steps, seed=a.seed, progress=True,
                        composition_from=a.composition_from,
                        guidance=a.guidance, space_group=a.space_group)  # fmt: skip
    symmetric = uses_groups(LoadedModel.load(ckpt), scfg.space_group)
    tpl = None
    if a.templates:
        tpl = (cached_description_path(dataset, a.templates, a.data_dir) if symmetric
               else cached_templates_path(dataset, a.templates, a.data_dir))  # fmt: skip
    kind = SymmetricConfig if symmetric else ReconstructConfig
    extra = {"random_starts": a.random_starts} if symmetric else {}
    rcfg = kind(trials=a.trials, hops=a.hops, steps=a.steps, seed=a.seed, **extra)
    gcfg = GenerateConfig(out=work, sample=scfg, reconstruct=rcfg, templates=tpl,
                          batch_size=a.batch_size)  # fmt: skip
    write_json(res / "generate_config.json", gcfg.settings())
    generate_stage(gcfg, timing, timing_path, a.limit)
    save_predictions_csv(load_predictions(work), res / "predictions.csv.gz", force=True)
    t0 = time.perf_counter()
    ecfg = EvaluateConfig(pred=work, dataset=dataset, split="test", out=res, data_dir=a.data_dir,
                          novelty_split="val", n_property=1000, seed=a.seed,
                          workers=a.workers, force=True, progress=True)  # fmt: skip
    metrics = evaluate_generation(ecfg)
    metrics.update(spacegroup_vs_test(dataset, metrics, a))
    write_json(res / "metrics.json", metrics)
    timing["evaluation"] = time.perf_counter() - t0
    timing["machine"] = f"{os.cpu_count()} CPU cores, torch {torch.__version__}, "
    timing["machine"] += f"{torch.get_num_threads()} threads"
    timing["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(timing_path, timing)
    return metrics


def reference_row(dataset: str, a: argparse.Namespace) -> dict:
    """Score ``a.num`` seeded val crystals against test, like a generated set."""
    import numpy as np

    from structrepdiff.data.io import read_cdvae_csv, split_path

    df = read_cdvae_csv(split_path(a.data_dir, dataset, "val"))
    rows = np.sort(np.random.default_rng(a.seed).permutation(len(df))[: a.num])
    pred = a.work / f"reference_{dataset}_val{a.num}.csv.gz"
    pred.parent.mkdir(parents=True, exist_ok=True)
    df.iloc[rows][["material_id", "cif"]].to_csv(pred, index=False)
    t0 = time.perf_counter()
    res = a.out / f"reference_{dataset}_val{a.num}"
    ecfg = EvaluateConfig(pred=pred, dataset=dataset, split="test", out=res, data_dir=a.data_dir,
                          novelty_split="", n_property=1000, seed=a.seed, workers=a.workers,
                          force=True, progress=True)  # fmt: skip
    metrics = evaluate_generation(ecfg)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(res / "timing.json", {"evaluation": time.perf_counter() - t0, "date": date})
    return metrics


def peer_row(spec: str, a: argparse.Namespace) -> tuple[str, dict]:
    """Score ``a.num`` seeded crystals (all if 0) of a peer's sample file against test."""
    import numpy as np

    from structrepdiff.data.io import read_cdvae_csv

    name, dataset, path = spec.split("=", 2)
    df = read_cdvae_csv(Path(path))
    num = len(df) if a.num <= 0 else min(a.num, len(df))
    rows = np.sort(np.random.default_rng(a.seed).permutation(len(df))[:num])
    pred = a.work / f"peer_{name}_{num}.csv.gz"
    pred.parent.mkdir(parents=True, exist_ok=True)
    df.iloc[rows][["material_id", "cif"]].to_csv(pred, index=False)
    t0 = time.perf_counter()
    res = a.out / f"peer_{name}_{num}"
    ecfg = EvaluateConfig(pred=pred, dataset=dataset, split="test", out=res, data_dir=a.data_dir,
                          novelty_split="val", n_property=1000, seed=a.seed, workers=a.workers,
                          force=True, progress=True)  # fmt: skip
    metrics = evaluate_generation(ecfg)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(res / "timing.json", {"evaluation": time.perf_counter() - t0, "date": date,
                                     "source": str(path), "n_source": len(df)})  # fmt: skip
    return f"{name} ({num} of {len(df)})", metrics


def report(name: str, m: dict) -> None:
    """One Table 2 row (as benchmarks/generation_table.py prints it) for this run."""
    print(row(name, m, {}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", nargs="+", default=[], help="DATASET=CHECKPOINT pairs")
    ap.add_argument("--reference", nargs="+", default=[], help="datasets for val-vs-test rows")
    ap.add_argument("--peer", nargs="+", default=[], help="NAME=DATASET=FILE peer sample files")
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--limit", type=int,
                    help="reconstruct and score only the first LIMIT of the --num samples "
                    "(a rerun with a larger limit continues)")  # fmt: skip
    ap.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    ap.add_argument("--sample-steps", type=int, default=100)
    ap.add_argument("--composition-from", type=Path,
                    help="feature .npz to draw compositions from (conditional)")  # fmt: skip
    ap.add_argument("--guidance", type=float, default=1.0,
                    help="classifier-free guidance of a conditional model")  # fmt: skip
    ap.add_argument("--templates", help="training split for template starts (e.g. val)")
    ap.add_argument("--space-group", default="auto",
                    help="auto: each sample in a group drawn from the model's prior (when it "
                    "bundles one); off: today's unconstrained path")  # fmt: skip
    ap.add_argument("--random-starts", type=int, default=SymmetricConfig.random_starts)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--hops", type=int, default=1)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="evaluation processes")
    ap.add_argument("--tag", default="ddim100")
    ap.add_argument("--data-dir")
    ap.add_argument("--work", type=Path, default=Path("runs/generation"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/generation"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally` blocks on kill
    for dataset in a.reference:
        report(f"reference {dataset}", reference_row(dataset, a))
    for spec in a.peer:
        report(*peer_row(spec, a))
    for spec in a.run:
        dataset, _, ckpt = spec.partition("=")
        report(dataset, run_one(dataset, Path(ckpt), a))


if __name__ == "__main__":
    main()
