"""Lever for P1 %: symmetrise reconstructed crystals (spglib refinement at tolerance τ, back to
the primitive cell) and measure what it costs. Reads one reconstruction folder of
`conditional_structure.py` or `generation_diagnostics.py` (its vectors.npz and CIFs); per τ:
P1 % (symprec 0.1 Å, as the evaluator), structure validity, match to the test crystal of the
same id (when the ids are test ids), N preserved %, and the descriptor loss of the
symmetrised crystal against the target vector (relative L1 over the EAD blocks plus
0.1·|Δd_min|/d_min, the reconstruction loss).

    python studies/symmetrize_lever.py --work runs/conditional/perov_5/cfg1 --dataset perov_5
"""

from __future__ import annotations

import argparse
import csv
import json
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from structrepdiff.data.io import load_split
from structrepdiff.evaluate.reconstruction import reconstruction_match, reconstruction_matcher
from structrepdiff.evaluate.symmetry import space_group
from structrepdiff.evaluate.validity import structure_validity
from structrepdiff.features import load_features
from structrepdiff.representation.encode import encode_structures


def symmetrize(s: Structure, tol: float) -> Structure | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = SpacegroupAnalyzer(s, symprec=tol).get_refined_structure()
            return SpacegroupAnalyzer(ref, symprec=tol).find_primitive() or ref
    except Exception:
        return None


def loss(R: np.ndarray, target: np.ndarray, sl: dict) -> float:
    e = np.r_[sl["ead_max"], sl["ead_min"]]
    d = sl["d_min"].start
    return float(np.abs(R[e] - target[e]).sum() / np.abs(target[e]).sum()
                 + 0.1 * abs(R[d] - target[d]) / target[d])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--tols", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5])
    ap.add_argument("--data-dir")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    fs = load_features(a.work / "vectors.npz")
    target = dict(zip(fs.ids, fs.R, strict=True))
    with open(a.work / "summary.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("cif")]
    structs = {r["id"]: Structure.from_file(a.work / r["cif"]) for r in rows}
    split = load_split(a.dataset, "test", a.data_dir)
    truth = {i: s for i, s in zip(split.ids, split.structures, strict=True) if i in structs}
    matcher, result = reconstruction_matcher(), {}
    sl = fs.rep.layout.slices
    for tol in a.tols:
        out = {i: (s if tol == 0 else symmetrize(s, tol)) for i, s in structs.items()}
        ok = {i: s for i, s in out.items() if s is not None and len(s) == len(structs[i])}
        R = dict(zip(ok, encode_structures(list(ok.values()), fs.rep), strict=True))
        sg = [space_group(s) for s in ok.values()]
        match = [reconstruction_match(s, truth[i], matcher, check_validity=False).matched
                 for i, s in ok.items() if i in truth]  # fmt: skip
        result[str(tol)] = {
            "n": len(structs), "same_n_pct": 100.0 * len(ok) / len(structs),
            "p1_pct": 100.0 * sum(r.ok and r.value[0] == 1 for r in sg) / max(len(sg), 1),
            "struct_valid_pct": 100.0 * np.mean([bool(structure_validity(s).value)
                                                 for s in ok.values()]),
            "match_test_pct": 100.0 * np.mean(match) if match else None,
            "median_loss": float(np.median([loss(R[i], target[i], sl) for i in ok])),
        }  # fmt: skip
        print(tol, json.dumps(result[str(tol)]), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {"work": str(a.work), "rows": result, "note": "tol 0 = the crystals as reconstructed"},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
