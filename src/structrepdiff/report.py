"""One self-contained HTML page for a `generate` run (and its evaluation, relaxation and
stability, where present): a summary table, the metrics beside the data's, pictures, and a
table of crystals with a picture each and links to their CIFs. Everything is inline (base64
PNGs, no scripts), so the page opens with no network.

Read from ``run``: ``summary.csv`` (required), ``generate_config.json``, ``samples.npz``,
``evaluation_generation/{metrics.json,per_crystal.csv}``, ``relaxed/summary.csv`` and
``relaxed/evaluation_stability/per_crystal.csv``. The data side comes from ``data`` (a folder
written by `evaluate generation` on data crystals, e.g. 1,000 training crystals scored as if
generated), else from a seeded draw of the dataset's training split when it can be found.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from structrepdiff import plots
from structrepdiff.data.registry import outside_dataset
from structrepdiff.data.run_folder import (
    GENERATE_CONFIG,
    PER_CRYSTAL,
    RELAXED_DIR,
    SAMPLES,
    SUMMARY,
    evaluation_dir,
)
from structrepdiff.data.run_folder import (
    METRICS as METRICS_FILE,
)

log = logging.getLogger(__name__)
METRICS = (
    ("struct_validity_pct", "structure valid %"),
    ("comp_validity_pct", "composition valid %"),
    ("cov_recall_cdvae", "COV-R % (CDVAE thr.)"),
    ("cov_precision_cdvae", "COV-P % (CDVAE thr.)"),
    ("emd_density", "EMD density"),
    ("emd_n_elements", "EMD #elements"),
    ("uniqueness_pct", "unique %"),
    ("novelty_pct", "novel %"),
    ("p1_pct", "P1 %"),
)


@dataclass(frozen=True)
class ReportConfig:
    """``limit``: crystals drawn in the table (the others are listed without a picture);
    ``data``: an evaluation folder of data crystals (None: look for one, see module doc)."""

    run: Path
    out: Path | None = None
    dataset: str | None = None
    data: Path | None = None
    data_dir: str | None = None
    limit: int = 60
    n_data: int = 1000
    seed: int = 0
    force: bool = False

    def __post_init__(self) -> None:
        if self.limit < 0 or self.n_data < 1:
            raise ValueError(f"`limit` must be >= 0 and `n_data` >= 1, got {self.limit} and "
                             f"{self.n_data}")  # fmt: skip
        if self.dataset is not None:
            from structrepdiff.data.registry import get_dataset

            get_dataset(self.dataset)  # an unknown name is a ValueError naming the known ones
        if self.data is not None and not (Path(self.data) / PER_CRYSTAL).is_file():
            raise FileNotFoundError(f"`data` {self.data} holds no {PER_CRYSTAL} (an `evaluate "
                                    "generation` folder of data crystals)")  # fmt: skip

    def out_path(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.run) / "report.html"


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path} is not a readable CSV ({type(exc).__name__})") from None


STATUSES = ("converged", "not_converged", "rejected", "failed")


def _summary_rows(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """(rows of a run's summary, what was wrong with it): a torn last line (no newline: a run
    was stopped mid-write) is left out and said; a status outside `STATUSES` is said. A
    summary without crystals is a ValueError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text summary (not UTF-8)") from None
    notes = []
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        notes.append(f"{path.name} ends in a torn line (a run stopped mid-write): left out")
    try:
        rows = [r for r in csv.DictReader(text.splitlines()) if r.get("id")]
    except csv.Error as exc:
        raise ValueError(f"{path} is not a readable CSV ({exc})") from None
    if not rows:
        raise ValueError(f"{path} lists no crystals")
    odd = sorted({r.get("status") or "" for r in rows} - set(STATUSES))
    if odd:
        notes.append(f"unknown status in {path.name}: {', '.join(map(repr, odd))}")
    return rows, notes


def _cif_link(run: Path, out: Path, name: str | None) -> str:
    """A link to a crystal's CIF, relative to the report's folder: only a plain file name of
    the run folder is linked (never a URL or a path elsewhere)."""
    if not name:
        return ""
    if Path(name).name != name or ":" in name or not (run / name).is_file():
        return html.escape(name)
    target = os.path.relpath((run / name).absolute(), Path(out).absolute().parent)
    return f'<a href="{html.escape(target)}">{html.escape(name)}</a>'


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str, width: str = "") -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{b64}">'


def flat_metrics(m: dict) -> dict[str, float | None]:
    """The headline numbers of an `evaluate generation` metrics.json, flat."""
    cov = (m.get("coverage") or {}).get("cdvae") or {}
    props = m.get("properties") or {}
    return {
        "struct_validity_pct": m.get("struct_validity_pct"),
        "comp_validity_pct": m.get("comp_validity_pct"),
        "cov_recall_cdvae": cov.get("cov_recall_pct"),
        "cov_precision_cdvae": cov.get("cov_precision_pct"),
        "emd_density": props.get("emd_density"),
        "emd_n_elements": props.get("emd_n_elements"),
        "uniqueness_pct": m.get("uniqueness_pct"),
        "novelty_pct": m.get("novelty_pct"),
        "p1_pct": m.get("p1_pct"),
    }


def _fmt(v) -> str:
    if v is None or v == "":
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    return f"{f:.3g}" if abs(f) < 1 else f"{f:.1f}"


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _dataset(cfg: ReportConfig, gen_cfg: dict, metrics: dict) -> str | None:
    if cfg.dataset:
        return cfg.dataset
    if metrics.get("dataset"):
        return metrics["dataset"]
    model = (gen_cfg.get("sample") or {}).get("model")
    from structrepdiff.bundled import resolve_model

    if model and resolve_model(model).is_file():
        from structrepdiff.pipeline.checkpoint import load_checkpoint, training_source

        return training_source(load_checkpoint(model)).get("dataset")
    return None


def _reference(cfg: ReportConfig, model: str | None, dataset: str | None, limit: int
               ) -> tuple[list, str]:  # fmt: skip
    """(data crystals, where they came from): the template crystals packed in the run's model
    file (its training split), else ``dataset``/val from the data directory, else none."""
    from structrepdiff.reconstruct.template_pack import checkpoint_pack, pack_structures

    pack = checkpoint_pack(model) if model else None
    if pack is not None:
        return (pack_structures(pack, limit),
                f"{pack['dataset']}/{pack['split']} bundled with the model, first {limit}")
    if not dataset:
        return [], "none (dataset unknown)"
    try:
        from structrepdiff.data.io import load_split

        loaded = load_split(dataset, "val", cfg.data_dir, limit=limit)
    except Exception as exc:  # no data here: the report goes on without the data side
        log.warning("report without data: %s", exc)
        return [], f"none ({' '.join(str(exc).split())[:120]})"
    return loaded.structures, f"{dataset}/val, first {limit}"


def _data_side(cfg: ReportConfig, model: str | None, dataset: str | None
               ) -> tuple[dict, dict[str, list], str]:  # fmt: skip
    """(data metrics, data crystal properties, where they came from): an `evaluate
    generation` folder of data crystals (``cfg.data``) gives both; else the properties of the
    reference crystals (`_reference`) and no metrics."""
    if cfg.data is not None:
        rows = _rows(Path(cfg.data) / PER_CRYSTAL)
        props = {
            "density": [float(r["density"]) for r in rows if r.get("density")],
            "n_elements": [int(r["n_elements"]) for r in rows if r.get("n_elements")],
            "n_atoms": [int(r["n_atoms"]) for r in rows if r.get("n_atoms")],
            "spacegroup": [int(r["spacegroup"]) for r in rows if r.get("spacegroup")],
        }
        return flat_metrics(_json(Path(cfg.data) / METRICS_FILE)), props, str(cfg.data)
    structures, where = _reference(cfg, model, dataset, cfg.n_data)
    return {}, plots.crystal_properties(structures) if structures else {}, where


def _structures(run: Path, rows: list[dict[str, str]]) -> dict[str, object]:
    from structrepdiff.data.io import parse_cif, read_cif_text

    out = {}
    for r in rows:
        if r.get("cif"):
            text, _ = read_cif_text(run / r["cif"])
            try:
                out[r["id"]] = parse_cif(text) if text else None
            except ValueError:
                out[r["id"]] = None
    return out


def _pca(cfg: ReportConfig, run: Path, model: str | None, dataset: str | None
         ) -> tuple[str | None, str]:  # fmt: skip
    """PCA of the sampled vectors against the encoded data crystals (the paper's Fig. 5)."""
    samples = run / SAMPLES
    if not samples.is_file() or not dataset:
        return None, "no samples.npz" if dataset else "dataset unknown"
    structures, where = _reference(cfg, model, dataset, min(cfg.n_data, 500))
    if not structures:
        return None, f"no data crystals: {where}"
    try:
        from structrepdiff.features import load_features
        from structrepdiff.representation.encode import encode_structures

        fs = load_features(samples)
        data = encode_structures(structures, fs.rep)
    except Exception as exc:  # a foreign samples file: no PCA, and the page says why
        return None, " ".join(str(exc).split())[:160]
    fig = plots.pca_plot({"data": data, "generated": fs.R}, title="PCA of R (axes fitted on data)")
    axes = plots.pca_axes(data)
    R = fs.R[np.isfinite(fs.R).all(1)]
    n_out = int(axes.outside(axes.project(R)).sum())
    return _png(fig), (f"{len(fs.R)} sampled vectors, {len(data)} crystals of {where}; axes "
                       "fitted on the data's non-constant features, robustly scaled; "
                       f"{n_out} sampled vectors lie beyond the data's range and are drawn at "
                       "the edge")  # fmt: skip


def _crystal_table(
    run: Path, out: Path, rows: list[dict[str, str]], structs: dict, ehull: dict,
    ev_rows: dict, limit: int,
) -> str:  # fmt: skip
    body = []
    for k, r in enumerate(rows):
        s = structs.get(r["id"])
        pic = (
            _img(_png(plots.crystal_image(s, size=1.6)), r["id"], "110")
            if (s is not None and k < limit)
            else ""
        )
        ev = ev_rows.get(r["id"], {})
        sg = ev.get("spacegroup_symbol") or ""
        if not sg and s is not None and k < limit:
            from structrepdiff.evaluate.symmetry import space_group

            g = space_group(s)
            sg = g.value[1] if g.ok else ""
        link = _cif_link(run, out, r.get("cif"))
        formula = s.composition.reduced_formula if s is not None else ""
        body.append(
            [
                pic,
                html.escape(r["id"]),
                html.escape(formula),
                html.escape(sg),
                _fmt(r.get("loss")),
                html.escape(r.get("status", "")),
                _fmt(ehull.get(r["id"])),
                html.escape(r.get("reason") or ""),
                link,
            ]
        )
    head = [
        "",
        "id",
        "formula",
        "space group",
        "loss",
        "status",
        "E_hull (eV/atom)",
        "reason",
        "CIF",
    ]
    return _table(head, body, "crystals")


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:left;vertical-align:middle}th{background:#f3f3f3}
.crystals td:first-child{padding:0}h2{margin-top:1.6em}.note{color:#666;font-size:13px}"""


def build_report(cfg: ReportConfig) -> Path:
    """Write the report (see module docstring); returns its path."""
    from structrepdiff.data.atomic import atomic_write

    run, out = Path(cfg.run), cfg.out_path()
    if not (run / SUMMARY).is_file():
        raise FileNotFoundError(f"{run} has no summary.csv (not a generate / reconstruct run)")
    rows, problems = _summary_rows(run / SUMMARY)
    if out.exists() and not cfg.force:
        raise FileExistsError(f"{out} exists; pass `force`=True to overwrite")
    gen_cfg, metrics = (
        _json(run / GENERATE_CONFIG),
        _json(run / evaluation_dir("generation") / METRICS_FILE),
    )
    dataset = _dataset(cfg, gen_cfg, metrics)
    ev_rows = {r["id"]: r for r in _rows(run / evaluation_dir("generation") / PER_CRYSTAL)}
    ehull = {
        r["id"]: r.get("e_hull")
        for r in _rows(run / RELAXED_DIR / evaluation_dir("stability") / PER_CRYSTAL)
    }
    structs = _structures(run, rows)
    if dataset and (note := outside_dataset(structs.values(), dataset)):
        log.warning(note)
        problems.append(note)
    model = (gen_cfg.get("sample") or {}).get("model")
    data_m, data_props, data_src = _data_side(cfg, model, dataset)
    parts = [
        f"<h1>StructRepDiff run: {html.escape(run.name)}</h1>",
        f'<p class="note">{html.escape(str(run))} · dataset {html.escape(str(dataset))}'
        f" · {len(rows)} crystals</p>",
        *(f'<p class="note">warning: {html.escape(p)}</p>' for p in problems),
    ]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("status", "")] = counts.get(r.get("status", ""), 0) + 1
    smp = gen_cfg.get("sample") or {}
    summary = [
        ["model", html.escape(str(smp.get("model", "–")))],
        ["samples / seed", f"{smp.get('num', len(rows))} / {smp.get('seed', '–')}"],
        ["statuses", html.escape(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))],
        [
            "median loss",
            _fmt(
                np.median([float(r["loss"]) for r in rows if r.get("loss")])
                if any(r.get("loss") for r in rows)
                else None
            ),
        ],
    ]
    parts += ["<h2>Summary</h2>", _table(["", ""], summary)]
    if metrics:
        gen = flat_metrics(metrics)
        mrows = [[label, _fmt(gen.get(key)), _fmt(data_m.get(key))] for key, label in METRICS]
        n_ref = metrics.get("n_reference", "–")
        parts += [
            "<h2>Metrics (CDVAE protocol)</h2>",
            _table(["metric", "generated", "data"], mrows),
            f'<p class="note">against {html.escape(str(metrics.get("reference_split")))}'
            f" ({n_ref} crystals); data column: {html.escape(data_src)}</p>",
        ]
    parts.append("<h2>Pictures</h2>")
    gen_props = plots.crystal_properties([s for s in structs.values() if s is not None])
    sets = {"generated": gen_props, **({"data": data_props} if data_props else {})}
    parts.append(_img(_png(plots.property_histograms(sets)), "property histograms", "100%"))
    parts.append(f'<p class="note">data: {html.escape(data_src)}</p>')
    losses = [float(r["loss"]) for r in rows if r.get("loss")]
    thr = (gen_cfg.get("reconstruct") or {}).get("threshold", 1e-3)
    parts.append(
        _img(
            _png(plots.reconstruction_loss_histogram(losses, threshold=thr)), "reconstruction loss"
        )
    )
    pca, why = _pca(cfg, run, model, dataset)
    parts.append(_img(pca, "PCA of R") if pca else "")
    parts.append(f'<p class="note">PCA: {html.escape(why)}</p>')
    gallery = [structs.get(r["id"]) for r in rows if structs.get(r["id"]) is not None][:12]
    if gallery:
        parts.append(_img(_png(plots.crystal_gallery(gallery)), "gallery", "100%"))
    table = _crystal_table(run, out, rows, structs, ehull, ev_rows, cfg.limit)
    parts += ["<h2>Crystals</h2>", table]
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run.name)}"
        f"</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    )
    atomic_write(out, lambda p: p.write_text(page), force=True, suffix=".html")
    return out
