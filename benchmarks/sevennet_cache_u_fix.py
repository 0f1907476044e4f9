"""Repair a SevenNet energies cache written before the GGA+U fix of `corrected_energy`
(issue 28): the single points of oxides and fluorides of U elements were cached uncorrected
(MP2020 refused them as GGA entries), so their cached energy is the raw one. This drops
exactly those rows, in place (atomically), so the next `hull_validation.py` run computes their
single points again with the fix (the cache is resumable). Rows without U elements were
corrected the same way before and after the fix and are kept.

    python benchmarks/sevennet_cache_u_fix.py runs/hull/mp_20_sevennet_energies.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from pymatgen.core import Composition

from structrepdiff.data.atomic import atomic_write
from structrepdiff.relax.potential import _mp2020


def needs_u(formula: str) -> bool:
    comp = Composition(formula)
    top = sorted(comp.elements, key=lambda el: el.X)[-1].symbol
    u = _mp2020().u_settings.get(top, {})
    return any(float(u.get(el.symbol, 0)) for el in comp.elements)


def main() -> None:
    path = Path(sys.argv[1])
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if not (r["formula"] and needs_u(r["formula"]))]
    fixed = len(rows) - len(keep)
    rows = keep

    def write(p: Path) -> None:
        with open(p, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write, force=True, suffix=".csv")
    print(f"dropped {fixed} rows (oxides and fluorides of U elements), kept {len(rows)}")


if __name__ == "__main__":
    main()
