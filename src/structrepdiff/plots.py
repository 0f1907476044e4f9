"""Pictures of a run: PCA of R (the paper's Fig. 5), a gallery of crystals (Fig. 4), property
histograms against the data, the training loss curve and the reconstruction-loss distribution.

Every function draws onto a new matplotlib figure (Agg backend, no display needed), writes it
to ``path`` as PNG when given, and returns the figure. Inputs are arrays, structures or rows, so
the same functions serve the CLI (`structrepdiff plot ...`), the report and notebooks.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from structrepdiff.reconstruct.config import ReconstructConfig


@dataclass(frozen=True)
class PlotConfig:
    """Defaults of `structrepdiff plot`: crystals in a gallery, the data side of histograms
    (split and how many crystals), and the line of the reconstruction-loss histogram (the
    reconstruction's convergence threshold)."""

    gallery_limit: int = 16
    data_split: str = "val"
    n_data: int = 1000
    loss_line: float = ReconstructConfig.threshold


COLORS = {"generated": "tab:red", "train": "tab:blue", "test": "tab:green", "data": "tab:blue"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path | None, dpi: int = 110):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig


@dataclass(frozen=True)
class PcaAxes:
    """Principal axes of reference vectors: ``center`` and ``scale`` (D,) (median and a
    robust spread), ``components`` (k, D) with zero weight on the features that are constant
    in the reference, and the reference's own projected range ``lo``, ``hi`` (k,)."""

    center: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def project(self, X: np.ndarray) -> np.ndarray:
        """(n, k) coordinates of ``X`` (n, D)."""
        return (np.asarray(X, float) - self.center) / self.scale @ self.components.T

    def outside(self, P: np.ndarray, margin: float = 0.1) -> np.ndarray:
        """(n,) bool: projections beyond the reference's range widened by ``margin``."""
        pad = margin * (self.hi - self.lo)
        return ((self.lo - pad > P) | (self.hi + pad < P)).any(1)


def pca_axes(reference: np.ndarray, k: int = 2) -> PcaAxes:
    """The PCA of ``reference`` (n, D) on its non-constant features, each centred on its
    median and scaled by its interquartile range / 1.349 (by its standard deviation where the
    IQR is under a tenth of it). A constant feature (a cubic cell's angles) gets no weight,
    so a vector off that constraint is not stretched along an axis of zero spread."""
    X = np.asarray(reference, dtype=float)
    X = X[np.isfinite(X).all(1)]
    if len(X) < 2:
        raise ValueError("PCA needs at least two finite reference vectors")
    center = np.median(X, 0)
    q75, q25 = np.percentile(X, [75, 25], axis=0)
    std = X.std(0)
    iqr = (q75 - q25) / 1.349  # a feature constant in most rows but not all has an IQR of 0
    scale = np.where(iqr >= 0.1 * std, iqr, std)  # (or of float noise): then its std counts
    keep = std > 1e-9 * (1.0 + np.abs(center))
    if not keep.any():
        raise ValueError("PCA needs a reference with at least one non-constant feature")
    scale = np.where(keep, scale, 1.0)
    _, _, vt = np.linalg.svd((X[:, keep] - center[keep]) / scale[keep], full_matrices=False)
    comps = np.zeros((min(k, vt.shape[0]), X.shape[1]))
    comps[:, keep] = vt[:k]
    P = (X - center) / scale @ comps.T
    return PcaAxes(center, scale, comps, P.min(0), P.max(0))


def pca_plot(sets: Mapping[str, np.ndarray], path: str | Path | None = None,
             fit_on: str | None = None, title: str = "PCA of R"):  # fmt: skip
    """Scatter of the first two principal components of each named set of vectors (n, D), the
    axes fitted on ``fit_on`` (default: the first set, e.g. the training vectors; `pca_axes`).
    Points of the other sets beyond the reference's range (10 % margin) are drawn at the edge
    as crosses and counted in the legend."""
    plt = _plt()
    names = list(sets)
    ref = fit_on or names[0]
    axes = pca_axes(sets[ref])
    pad = 0.1 * (axes.hi - axes.lo)
    lo, hi = axes.lo - pad, axes.hi + pad
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name in names:
        X = np.asarray(sets[name], dtype=float)
        X = X[np.isfinite(X).all(1)]
        P = axes.project(X)
        out = axes.outside(P) if name != ref else np.zeros(len(P), bool)
        label = f"{name} ({len(X)}" + (f"; {out.sum()} outside, at the edge)" if out.any()
                                       else ")")  # fmt: skip
        color = COLORS.get(name)
        sc = ax.scatter(P[~out, 0], P[~out, 1], s=6, alpha=0.5, label=label, color=color)
        if out.any():
            C = np.clip(P[out], lo, hi)
            ax.scatter(C[:, 0], C[:, 1], s=14, marker="x", alpha=0.8,
                       color=sc.get_facecolor()[0])  # fmt: skip
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title, xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.legend(markerscale=3, frameon=False)
    return _save(fig, path)


def crystal_image(structure, path: str | Path | None = None, size: float = 2.4,
                  title: str | None = None):  # fmt: skip
    """One crystal drawn with ASE's ``plot_atoms`` (unit cell outlined, slight rotation)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(size, size))
    _draw_crystal(ax, structure, title)
    return _save(fig, path)


def _draw_crystal(ax, structure, title: str | None) -> None:
    from ase.visualize.plot import plot_atoms
    from pymatgen.io.ase import AseAtomsAdaptor

    from structrepdiff.data.io import nonfinite_reason

    ax.set_axis_off()
    why = "no structure" if structure is None else nonfinite_reason(structure)
    if why:
        ax.text(0.5, 0.5, why.replace(" or ", "\nor "), ha="center", va="center",
                transform=ax.transAxes, fontsize=7)  # fmt: skip
    else:
        plot_atoms(AseAtomsAdaptor.get_atoms(structure), ax, rotation="10x,-20y,0z",
                   radii=0.45, show_unit_cell=2)  # fmt: skip
    if title:
        ax.set_title(title, fontsize=8)


def crystal_gallery(structures: Sequence, labels: Sequence[str] | None = None,
                    path: str | Path | None = None, ncols: int = 4):  # fmt: skip
    """A grid of crystals (None: an empty tile), each titled with its label or formula."""
    plt = _plt()
    n = max(len(structures), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.5 * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(structures):
            ax.set_axis_off()
            continue
        s = structures[k]
        label = labels[k] if labels is not None else (
            s.composition.reduced_formula if s is not None else "")  # fmt: skip
        _draw_crystal(ax, s, label)
    return _save(fig, path)


def crystal_properties(structures: Sequence) -> dict[str, list]:
    """Density (g/cm³), number of elements, atom count and space-group number per crystal
    (crystals without a structure, or whose symmetry fails, are left out of that list)."""
    from structrepdiff.evaluate.structures import density, n_elements
    from structrepdiff.evaluate.symmetry import space_group

    out: dict[str, list] = {"density": [], "n_elements": [], "n_atoms": [], "spacegroup": []}
    from structrepdiff.data.io import nonfinite_reason

    for s in structures:
        if s is None or nonfinite_reason(s):
            continue
        out["density"].append(density(s))
        out["n_elements"].append(n_elements(s))
        out["n_atoms"].append(len(s))
        sg = space_group(s)
        if sg.ok:
            out["spacegroup"].append(sg.value[0])
    return out


def property_histograms(sets: Mapping[str, Mapping[str, Sequence]], path: str | Path | None = None,
                        top_spacegroups: int = 12):  # fmt: skip
    """Four panels — density, number of elements, atom count, space group (the most common
    ``top_spacegroups`` of all sets, the rest as "other") — each set normalised to fractions.
    ``sets`` maps a name ("generated", "data") to `crystal_properties` output."""
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for name, props in sets.items():
        color = COLORS.get(name)
        d = np.asarray(props["density"], dtype=float)
        if len(d):
            axes[0].hist(d, bins=30, density=True, histtype="step", lw=1.5, label=name,
                         color=color)  # fmt: skip
        for ax, key in ((axes[1], "n_elements"), (axes[2], "n_atoms")):
            c = Counter(props[key])
            total = max(sum(c.values()), 1)
            xs = sorted(c)
            ax.plot(xs, [c[x] / total for x in xs], "o-", ms=3, label=name, color=color)
    every = Counter(g for props in sets.values() for g in props["spacegroup"])
    top = [g for g, _ in every.most_common(top_spacegroups)]
    width = 0.8 / max(len(sets), 1)
    for k, (name, props) in enumerate(sets.items()):
        c = Counter(props["spacegroup"])
        total = max(sum(c.values()), 1)
        fr = [c[g] / total for g in top] + [sum(v for g, v in c.items() if g not in top) / total]
        axes[3].bar(np.arange(len(fr)) + k * width, fr, width, label=name, color=COLORS.get(name))
    axes[3].set_xticks(np.arange(len(top) + 1) + 0.4 - width / 2,
                       [str(g) for g in top] + ["other"], fontsize=7)  # fmt: skip
    titles = ("density (g/cm³)", "number of elements", "atoms per cell", "space group")
    for ax, t in zip(axes, titles, strict=True):
        ax.set_title(t)
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_ylabel("fraction")
    return _save(fig, path)


def loss_curve(rows: Sequence[Mapping], path: str | Path | None = None):
    """Training loss (and held-out loss where logged) against step, from metrics.jsonl rows."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    train = [(r["step"], r["train_loss"]) for r in rows if r.get("train_loss") is not None]
    held = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    for pts, label in ((train, "training"), (held, "held out")):
        if pts:
            x, y = zip(*pts, strict=True)
            ax.plot(x, y, label=label, lw=1)
    ax.set(xlabel="step", ylabel="loss (MSE of ε)", yscale="log", title="training loss")
    ax.legend(frameon=False)
    return _save(fig, path)


def reconstruction_loss_histogram(losses: Sequence[float], path: str | Path | None = None,
                                  threshold: float | None = 1e-3):  # fmt: skip
    """Distribution of final reconstruction losses (log scale), the convergence threshold
    marked."""
    plt = _plt()
    x = np.asarray([v for v in losses if v is not None and np.isfinite(v) and v > 0], dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    if len(x):
        bins = np.logspace(np.log10(x.min()) - 0.1, np.log10(x.max()) + 0.1, 30)
        ax.hist(x, bins=bins, color="tab:purple", alpha=0.8)
    if threshold:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"converged < {threshold:g}")
        ax.legend(frameon=False)
    ax.set(xscale="log", xlabel="final loss (relative L1)", ylabel="crystals",
           title=f"reconstruction loss ({len(x)} crystals)")  # fmt: skip
    return _save(fig, path)
