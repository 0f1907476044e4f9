"""Print the Table 2 rows (markdown) from benchmarks/results/generation/*/metrics.json.

Each row: dataset, what was scored (a model run or the val-vs-test reference), crystal count,
validity, COV-R / COV-P with CDVAE's and the paper's thresholds, property EMDs, uniqueness,
novelty and wall time per stage; then the best published numbers of DESIGN.md §4.

    python benchmarks/generation_table.py [--results benchmarks/results/generation]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# DESIGN.md §4, best published generation numbers (CDVAE protocol, 10,000 samples, train split).
BEST = {
    "mp_20": "100 / ~90.3 / 99.71 / 99.83 / 0.239 / 0.069",
    "perov_5": "– / 98.85 / 99.74 / – / 0.111 / 0.0128",
    "carbon_24": "– / – / 100 / 98.16 / 0.066 / –",
}


def fmt(x, nd: int = 2) -> str:
    return "–" if x is None or x != x else f"{x:.{nd}f}"


def row(name: str, m: dict, timing: dict) -> str:
    cov, p = m["coverage"], m["properties"]
    secs = " / ".join(f"{timing[k]:.0f}" if k in timing else "–"
                      for k in ("sampling", "reconstruction", "evaluation"))  # fmt: skip
    drawn = f"{p['n_drawn']}" + ("" if p["complete"] else " (all valid)")
    return (f"| {m['dataset']} | {name} | {m['n_generated']} | {fmt(m['struct_validity_pct'])} "
            f"| {fmt(m['comp_validity_pct'])} | {fmt(cov['cdvae']['cov_recall_pct'])} / "
            f"{fmt(cov['cdvae']['cov_precision_pct'])} | {fmt(cov['paper']['cov_recall_pct'])} / "
            f"{fmt(cov['paper']['cov_precision_pct'])} | {fmt(p['emd_density'], 3)} | "
            f"{fmt(p['emd_n_elements'], 3)} | {drawn} | {fmt(m.get('uniqueness_pct'), 1)} | "
            f"{fmt(m.get('novelty_pct'), 1)} | {fmt(m.get('p1_pct'), 1)} | {secs} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/generation"))
    a = ap.parse_args()
    print(
        "| dataset | scored | n | struct valid % | comp valid % | COV-R / COV-P % (CDVAE "
        "thr.) | COV-R / COV-P % (paper thr.) | EMD density | EMD #elements | n for EMD | "
        "unique % | novel % (vs val) | P1 % | s: sampling / reconstruction / evaluation |"
    )
    print("|" + "---|" * 14)
    for d in sorted(a.results.iterdir()):
        if not (d / "metrics.json").is_file():
            continue
        m = json.loads((d / "metrics.json").read_text())
        t = d / "timing.json"
        timing = json.loads(t.read_text()) if t.is_file() else {}
        print(row(d.name.removeprefix(f"{m['dataset']}_"), m, timing))
    print()
    print(
        "| dataset | best published: struct / comp valid %, COV-R / COV-P %, EMD density / "
        "#elements |"
    )
    print("|---|---|")
    for ds, text in BEST.items():
        print(f"| {ds} | {text} |")


if __name__ == "__main__":
    main()
