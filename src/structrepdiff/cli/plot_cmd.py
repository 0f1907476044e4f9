"""`structrepdiff plot`: the pictures of `structrepdiff.plots` from files."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from structrepdiff.data.run_folder import SUMMARY
from structrepdiff.plots import PlotConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw a picture (PNG) of vectors, crystals or a run",
                       description="Write one PNG: PCA of R, a crystal gallery, property "
                       "histograms against the data, the training loss or the reconstruction "
                       "loss distribution.")  # fmt: skip
    kinds = p.add_subparsers(dest="kind", required=True)
    pca = kinds.add_parser("pca", help="PCA of R vectors (axes fitted on the first file)")
    pca.add_argument(
        "--vectors",
        nargs="+",
        required=True,
        type=Path,
        help="feature files (.npz), e.g. training features then samples.npz",
    )
    pca.add_argument("--labels", nargs="+", help="one name per file (default: file stems)")
    gal = kinds.add_parser("gallery", help="a grid of crystals")
    gal.add_argument("--pred", required=True, type=Path, help="anything `evaluate` reads")
    gal.add_argument("--limit", type=int, default=PlotConfig.gallery_limit,
                     help="crystals drawn")  # fmt: skip
    hist = kinds.add_parser("histograms", help="density, #elements, atoms, space group vs data")
    hist.add_argument("--pred", required=True, type=Path, help="anything `evaluate` reads")
    hist.add_argument("--dataset", required=True, help="dataset of the data side")
    hist.add_argument("--split", default=PlotConfig.data_split, help="data split drawn")
    hist.add_argument("--n-data", type=int, default=PlotConfig.n_data,
                      help="data crystals read")  # fmt: skip
    hist.add_argument("--data-dir")
    loss = kinds.add_parser("loss", help="training loss curve of a model or a train --out")
    loss.add_argument(
        "--model",
        required=True,
        type=Path,
        help="checkpoint.pt, or a train output folder with metrics.jsonl",
    )
    rec = kinds.add_parser("recon-loss", help="reconstruction loss distribution of a run")
    rec.add_argument("--pred", required=True, type=Path, help="a folder with summary.csv")
    rec.add_argument("--threshold", type=float, default=PlotConfig.loss_line,
                     help="line at this loss")  # fmt: skip
    for k in (pca, gal, hist, loss, rec):
        k.add_argument("--out", required=True, type=Path, help="output .png")
        k.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=run)  # fmt: skip


def _structures(pred: Path, limit: int | None = None) -> list:
    from structrepdiff.data.predictions import load_predictions

    return [p.structure for p in load_predictions(pred)[:limit]]


def _loss_rows(model: Path) -> list[dict]:
    if model.is_dir():
        with open(model / "metrics.jsonl") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    from structrepdiff.pipeline.checkpoint import load_checkpoint

    return list(load_checkpoint(model).get("metrics") or [])


def run(args: argparse.Namespace) -> int:
    from structrepdiff import plots

    if args.out.suffix.lower() != ".png":  # matplotlib would add .png and report the other name
        raise ValueError(f"--out {args.out}: pictures are written as PNG; give a .png name")
    if args.out.exists() and not args.force:
        raise FileExistsError(f"{args.out} exists; pass --force to overwrite")
    if args.kind == "pca":
        _pca(args, plots)
    elif args.kind == "gallery":
        if args.limit < 1:
            raise ValueError(f"--limit {args.limit}: draw at least one crystal")
        structures = _structures(args.pred, args.limit)
        if not structures:
            raise ValueError(f"{args.pred} holds no crystals to draw")
        plots.crystal_gallery(structures, path=args.out)
    elif args.kind == "histograms":
        from structrepdiff.data.io import load_split

        if args.n_data < 1:
            raise ValueError(f"--n-data {args.n_data}: read at least one data crystal")
        data = load_split(args.dataset, args.split, args.data_dir, limit=args.n_data)
        gen = [s for s in _structures(args.pred) if s is not None]
        if not gen:
            raise ValueError(f"{args.pred} holds no crystals to count")
        from structrepdiff.data.registry import outside_dataset

        if note := outside_dataset(gen, args.dataset):
            logging.getLogger(__name__).warning(note)
        plots.property_histograms({"generated": plots.crystal_properties(gen),
                                   "data": plots.crystal_properties(data.structures)},
                                  args.out)  # fmt: skip
    elif args.kind == "loss":
        rows = _loss_rows(args.model)
        if not rows:
            raise ValueError(f"{args.model} holds no training metrics")
        plots.loss_curve(rows, args.out)
    else:
        from structrepdiff.data.run_folder import read_summary

        rows = read_summary(args.pred / SUMMARY, repair=False).values()
        losses = [float(r["loss"]) for r in rows if r.get("loss")]
        if not losses:
            raise ValueError(f"{args.pred} has no reconstruction losses (no {SUMMARY} rows "
                             "with a loss)")  # fmt: skip
        plots.reconstruction_loss_histogram(losses, args.out, args.threshold)
    print(f"wrote {args.out}")
    return 0


def _pca(args: argparse.Namespace, plots) -> None:
    from structrepdiff.features import load_features

    labels = args.labels or [v.name.split(".")[0] for v in args.vectors]
    if len(labels) != len(args.vectors):
        raise ValueError("--labels needs one name per --vectors file")
    sets = {n: load_features(v) for n, v in zip(labels, args.vectors, strict=True)}
    dims = {n: fs.R.shape[1] for n, fs in sets.items()}
    if len(set(dims.values())) > 1:
        raise ValueError("--vectors of different representations (another dataset or preset): "
                         + ", ".join(f"{n} has {d} features" for n, d in dims.items()))
    plots.pca_plot({n: fs.R for n, fs in sets.items()}, args.out)
