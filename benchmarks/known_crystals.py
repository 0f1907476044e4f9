"""A user's own CIFs on the default path (issue 27, deliverable 1): 13 well-known crystals
built from their textbook prototypes, `structrepdiff featurize --cif ... --elements-from mp_20`,
then `structrepdiff reconstruct` with no options (starts from the bundled MP-20 model's
templates, found without a data directory) beside `--templates none` (random starts, what
such files got before the templates shipped), each matched to its input with CDVAE's
StructureMatcher. Writes ``--out/known_crystals.json``.

    python benchmarks/known_crystals.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from ase.build import bulk
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from structrepdiff.cli.main import main as cli
from structrepdiff.evaluate.reconstruction import reconstruction_match, reconstruction_matcher


def crystals() -> dict[str, Structure]:
    """13 prototypes at their experimental lattice constants (Å)."""
    ase = {"Si": bulk("Si", "diamond", a=5.431), "NaCl": bulk("NaCl", "rocksalt", a=5.64),
           "CsCl": bulk("CsCl", "cesiumchloride", a=4.12), "MgO": bulk("MgO", "rocksalt", a=4.21),
           "GaAs": bulk("GaAs", "zincblende", a=5.653), "ZnO": bulk("ZnO", "wurtzite", a=3.25,
                                                                    c=5.21),
           "Cu": bulk("Cu", "fcc", a=3.615), "Fe": bulk("Fe", "bcc", a=2.87),
           "CaF2": bulk("CaF2", "fluorite", a=5.463), "Li2O": bulk("Li2O", "fluorite", a=4.61),
           "Mg": bulk("Mg", "hcp", a=3.21, c=5.21)}  # fmt: skip
    out = {k: AseAtomsAdaptor.get_structure(v) for k, v in ase.items()}
    out["SrTiO3"] = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                              [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5],
                               [0, 0.5, 0.5]])  # fmt: skip
    out["TiO2"] = Structure(Lattice.tetragonal(4.594, 2.959), ["Ti", "Ti", "O", "O", "O", "O"],
                            [[0, 0, 0], [0.5, 0.5, 0.5], [0.305, 0.305, 0], [0.695, 0.695, 0],
                             [0.805, 0.195, 0.5], [0.195, 0.805, 0.5]])  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("runs/known_crystals"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/known_crystals"))
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    truth = crystals()
    cifs = a.work / "cifs"
    cifs.mkdir(parents=True, exist_ok=True)
    for name, s in truth.items():
        s.to(filename=str(cifs / f"{name}.cif"))
    feats = a.work / "known.npz"
    if not feats.exists():
        assert cli(["featurize", "--cif", str(cifs), "--elements-from", "mp_20", "--out",
                    str(feats), "--no-progress"]) == 0  # fmt: skip
    matcher, rows = reconstruction_matcher(), {n: {"id": n} for n in truth}
    for label, extra in (("bundled_templates", []), ("random_starts", ["--templates", "none"])):
        folder = a.work / label
        cli(["reconstruct", "--representations", str(feats), "--out", str(folder),
             "--no-progress", *extra])  # fmt: skip
        with open(folder / "summary.csv") as fh:
            for r in csv.DictReader(fh):
                m = (reconstruction_match(Structure.from_file(folder / r["cif"]), truth[r["id"]],
                                          matcher) if r["cif"] else None)  # fmt: skip
                rows[r["id"]][label] = bool(m and m.matched)
                rows[r["id"]][f"{label}_seconds"] = float(r["seconds"] or 0)
    result = {"n": len(rows),
              "matched": {k: sum(r.get(k, False) for r in rows.values())
                          for k in ("bundled_templates", "random_starts")},
              "rows": list(rows.values()), "elements_from": "mp_20",
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": "2 vCPU, 1 torch thread"}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "known_crystals.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("n", "matched")}))


if __name__ == "__main__":
    main()
