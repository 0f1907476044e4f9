"""Pictures and the HTML report: each plot writes a real PNG of the expected shape, the report
holds one entry per crystal, needs no network, and renders in a real browser where one is
installed."""

from __future__ import annotations

import base64
import csv
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from tests.conftest import PEROVSKITES, perovskite, write_perov_splits

from structrepdiff import plots
from structrepdiff.cli.main import main
from structrepdiff.report import ReportConfig, build_report


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_each_plot_writes_a_png_of_the_expected_shape(tmp_path):
    rng = np.random.default_rng(0)
    structs = [perovskite(a, b, c) for a, b, c in PEROVSKITES]
    plots.pca_plot({"train": rng.normal(size=(50, 6)), "generated": rng.normal(size=(20, 6))},
                   tmp_path / "pca.png")  # fmt: skip
    plots.crystal_gallery(structs * 2, path=tmp_path / "gallery.png", ncols=4)
    props = plots.crystal_properties(structs)
    plots.property_histograms({"generated": props, "data": props}, tmp_path / "hist.png")
    plots.loss_curve([{"step": s, "train_loss": 1 / s, "val_loss": 2 / s} for s in (1, 2, 3)],
                     tmp_path / "loss.png")  # fmt: skip
    plots.reconstruction_loss_histogram([1e-4, 1e-3, 0.1], tmp_path / "rl.png")
    w, h = _png_size(tmp_path / "gallery.png")  # 2 rows × 4 columns of 2.4 × 2.5 in tiles
    assert 0.35 < h / w < 0.7
    w, h = _png_size(tmp_path / "hist.png")  # four panels side by side, 16 × 3.4 in
    assert w > 3 * h
    for name in ("pca", "loss", "rl"):
        w, h = _png_size(tmp_path / f"{name}.png")
        assert 300 < w < 1000 and 200 < h < 800, name
    assert props["spacegroup"] == [221] * 4 and props["n_elements"] == [3] * 4


def test_pca_axes_are_the_reference_principal_directions():
    # two almost identical features: after standardising, PC 1 is the diagonal (1, 1)/√2
    rng = np.random.default_rng(1)
    t = rng.normal(size=500)
    X = np.stack([t, t + 0.01 * rng.normal(size=500)], axis=1)
    comps = plots.pca_axes(X).components
    assert abs(abs(comps[0] @ np.array([1, 1]) / np.sqrt(2)) - 1) < 1e-3


def test_a_constant_feature_does_not_stretch_the_pca_and_far_points_are_counted(tmp_path):
    """Cubic data (angle fixed at 90): a generated vector off the constraint by 1 degree stays
    inside the data's range, instead of landing (1 / tiny spread) away; a vector far off on a
    varying feature is counted as outside and drawn at the edge."""
    rng = np.random.default_rng(2)
    data = np.column_stack([rng.normal(4.0, 0.3, 400), rng.normal(0, 1, 400),
                            np.full(400, 90.0)])  # fmt: skip
    axes = plots.pca_axes(data)
    assert np.allclose(axes.components[:, 2], 0.0)  # the constant angle has no weight
    gen = np.array([[4.0, 0.0, 89.0], [4.1, 0.2, 91.0], [40.0, 0.0, 90.0]])
    P = axes.project(gen)
    assert np.isfinite(P).all() and list(axes.outside(P)) == [False, False, True]
    fig = plots.pca_plot({"data": data, "generated": gen}, tmp_path / "pca.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["data (400)", "generated (3; 1 outside, at the edge)"]
    x0, x1 = fig.axes[0].get_xlim()
    y0, y1 = fig.axes[0].get_ylim()
    for coll in fig.axes[0].collections:  # every drawn point lies inside the frame
        xy = coll.get_offsets()
        assert ((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)).all()


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A generate-like folder: three crystals (one CIF each) and one rejected vector, with a
    tiny perov_5 data directory for the data side."""
    data = write_perov_splits(tmp_path / "data", splits=(("val", 0.0),))
    monkeypatch.setenv("STRUCTREPDIFF_DATA", str(data))
    run = tmp_path / "gen"
    run.mkdir()
    with open(run / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["id", "status", "loss", "converged", "steps", "seconds",
                                "reason", "cif"])  # fmt: skip
        w.writeheader()
        for k, (a, b, c) in enumerate(PEROVSKITES[:3]):
            perovskite(a, b, c).to(filename=str(run / f"s{k}.cif"))
            w.writerow({"id": f"s{k}", "status": "not_converged", "loss": 0.01 * (k + 1),
                        "cif": f"s{k}.cif"})  # fmt: skip
        w.writerow({"id": "s3", "status": "rejected", "reason": "lattice: angles form no cell"})
    return run


def test_the_report_has_one_entry_per_crystal_and_needs_no_network(run_dir):
    out = build_report(ReportConfig(run=run_dir, dataset="perov_5"))
    page = out.read_text()
    table = page.split('<table class="crystals">', 1)[1]
    assert table.count("<tr>") == 1 + 4  # header + one row per crystal, rejected included
    for k in range(3):
        assert f'<a href="s{k}.cif">' in table
    assert "angles form no cell" in table and "SrTiO3" in table
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from outside
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 3 + 3  # three crystals + histograms, loss, gallery
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images)
    with pytest.raises(FileExistsError, match="`force`=True"):
        build_report(ReportConfig(run=run_dir, dataset="perov_5"))
    assert main(["report", str(run_dir), "--dataset", "perov_5", "--force"]) == 0


def test_report_of_a_folder_without_summary_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "has no summary.csv" in capsys.readouterr().err


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)  # fmt: skip


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium installed "
                    "(apt-get install chromium)")  # fmt: skip
def test_the_report_renders_in_a_headless_browser(run_dir, tmp_path):
    out = build_report(ReportConfig(run=run_dir, dataset="perov_5"))
    shot = tmp_path / "shot.png"
    subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--window-size=1200,2000", f"--screenshot={shot}", out.as_uri()],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    w, h = _png_size(shot)
    assert (w, h) == (1200, 2000)
    with Image.open(shot) as im:  # not a blank page: the pictures put many colours on it
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_9_the_report_links_only_files_of_the_run_and_says_what_is_wrong(run_dir, tmp_path):
    """Issue 29 item 9: a javascript: or absolute `cif` value is shown, never linked; links
    work from a report written elsewhere; a torn summary and an odd status are said; a missing
    --data folder, an unknown dataset, a header-only or binary summary are one-line errors."""
    text = (run_dir / "summary.csv").read_text()
    text += "s4,not_converged,0.1,0,1,0.1,,javascript:alert(1)\n"
    text += "s5,not_converge,0.1,0,1,0.1,,/etc/passwd\n"
    (run_dir / "summary.csv").write_text(text + "s6,not_conv")  # torn last line
    out = build_report(ReportConfig(run=run_dir, dataset="perov_5", out=tmp_path / "r" / "x.html"))
    page = out.read_text()
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert hrefs == [f"../gen/s{k}.cif" for k in range(3)]  # relative to the report
    assert "javascript:alert(1)" in page and "<td>s6</td>" not in page
    assert "torn line" in page and "unknown status" in page and "not_converge" in page
    with pytest.raises(FileNotFoundError, match=r"holds no per_crystal\.csv"):
        ReportConfig(run=run_dir, data=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown dataset 'banana'"):
        ReportConfig(run=run_dir, dataset="banana")
    (run_dir / "summary.csv").write_text("id,status,loss,cif\n")
    with pytest.raises(ValueError, match="lists no crystals"):
        build_report(ReportConfig(run=run_dir, dataset="perov_5", force=True))
    (run_dir / "summary.csv").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=r"summary\.csv is not a text summary"):
        build_report(ReportConfig(run=run_dir, dataset="perov_5", force=True))
