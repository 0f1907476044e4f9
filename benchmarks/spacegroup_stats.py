"""P1 % and space-group χ² / TV of a generated folder against a test split (spglib 0.1 Å), without
the full evaluator (no fingerprints): the symmetry columns of Table 2 in a minute.

    python benchmarks/spacegroup_stats.py --dataset mp_20 --pred runs/generation/mp_20_sg
"""

from __future__ import annotations

import argparse
import csv
import json
import warnings
from pathlib import Path

from pymatgen.core import Structure

from structrepdiff.data.io import load_split
from structrepdiff.evaluate.symmetry import space_group_chi2, space_group_stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--pred", type=Path, required=True, help="a generate folder (summary.csv)")
    ap.add_argument("--data-dir")
    ap.add_argument("--out", type=Path, help="JSON file (default: --pred/spacegroup_stats.json)")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    with open(a.pred / "summary.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("cif")]
    gen = space_group_stats([Structure.from_file(a.pred / r["cif"]) for r in rows])
    test = space_group_stats(load_split(a.dataset, "test", a.data_dir).structures)
    res = {"dataset": a.dataset, "n": len(rows), "p1_pct": 100 * gen["p1_fraction"],
           "test_p1_pct": 100 * test["p1_fraction"],
           **space_group_chi2(gen["histogram"], test["histogram"]),
           "histogram": {str(k): v for k, v in gen["histogram"].items()},
           "test_histogram": {str(k): v for k, v in test["histogram"].items()}}  # fmt: skip
    out = a.out or a.pred / "spacegroup_stats.json"
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if "histogram" not in k}))


if __name__ == "__main__":
    main()
