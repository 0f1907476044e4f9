"""Same answers (issue 28, deliverable 3): the batched relaxation against ASE's FIRE one crystal
at a time, on the same crystals with the same settings.

``run`` draws ``--num`` seeded crystals from ``--pred`` (anything `load_predictions` reads, e.g.
a split's CSV), relaxes them with both drivers into ``--work/ase`` and ``--work/batched``
(resumable) and compares; ``compare`` compares two finished relaxation folders; ``control``
relaxes the reference's long-trajectory crystals again crystal by crystal with every atom
moved by 1e-6 Å, the spread rounding alone gives. Written to
``--out`` (JSON): energies within 5 meV/atom, StructureMatcher-equal final structures (pymatgen
defaults), the converged sets, and every crystal that differs with both outcomes.

    python benchmarks/relax_agreement.py run --pred ../shared/data/mp_20/test.csv --num 100 \
        --work runs/agreement/real --out benchmarks/results/relax_agreement/real.json
    python benchmarks/relax_agreement.py compare --a runs/stability/X/relaxed \
        --b runs/stability/Y/relaxed --out benchmarks/results/relax_agreement/generated.json
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from structrepdiff.relax.config import RelaxConfig

TOL_MEV = 5.0
RELAXED = ("converged", "not_converged")


def _rows(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "summary.csv", newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def compare(a: Path, b: Path) -> dict:
    """Per-crystal agreement of relaxation folders ``a`` (reference) and ``b``."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    ra, rb = _rows(a), _rows(b)
    ids = sorted(set(ra) & set(rb))
    matcher, de, match, differ = StructureMatcher(), [], [], []
    for i in ids:
        x, y = ra[i], rb[i]
        both = x["status"] in RELAXED and y["status"] in RELAXED
        d = abs(float(x["energy_after"]) - float(y["energy_after"])) * 1000 if both else None
        m = bool(both and matcher.fit(Structure.from_file(a / x["cif"]),
                                      Structure.from_file(b / y["cif"])))  # fmt: skip
        if both:
            de.append(d)
            match.append(m)
        if x["status"] != y["status"] or (both and (d > TOL_MEV or not m)):
            differ.append({"id": i, "status": [x["status"], y["status"]],
                           "steps": [x["steps"], y["steps"]], "delta_mev": d, "match": m,
                           "energy_after": [x["energy_after"], y["energy_after"]]})  # fmt: skip
    conv_a = {i for i in ids if ra[i]["status"] == "converged"}
    conv_b = {i for i in ids if rb[i]["status"] == "converged"}
    de_arr = np.array(de)
    return {"reference": str(a), "batched": str(b), "n": len(ids), "n_relaxed_in_both": len(de),
            "energy_within_5mev_pct": float(100 * np.mean(de_arr <= TOL_MEV)) if de else None,
            "energy_abs_diff_mev": {"mean": float(de_arr.mean()), "median":
                                    float(np.median(de_arr)), "max": float(de_arr.max())}
            if de else None,
            "structure_match_pct": float(100 * np.mean(match)) if match else None,
            "converged": {"reference": len(conv_a), "batched": len(conv_b),
                          "only_reference": len(conv_a - conv_b),
                          "only_batched": len(conv_b - conv_a),
                          "differ_pct": 100 * len(conv_a ^ conv_b) / max(len(ids), 1)},
            "same_status_pct": 100 * float(np.mean([ra[i]["status"] == rb[i]["status"]
                                                   for i in ids])),
            "seconds_total": {"reference": sum(float(ra[i]["seconds"]) for i in ids),
                              "batched": sum(float(rb[i]["seconds"]) for i in ids)},
            "differ": differ}  # fmt: skip


def run(a: argparse.Namespace) -> dict:
    from structrepdiff.data.predictions import load_predictions, save_predictions_csv
    from structrepdiff.relax.run import RelaxJob, run_relax

    a.work.mkdir(parents=True, exist_ok=True)
    subset = a.work / "subset.csv.gz"
    if not subset.exists():
        preds = load_predictions(a.pred)
        pick = sorted(np.random.default_rng(a.seed).choice(len(preds), a.num, replace=False))
        save_predictions_csv([preds[k] for k in pick], subset)
    seconds = {}
    for driver in ("ase", "batched"):
        t0 = time.perf_counter()
        run_relax(RelaxJob(subset, a.work / driver, RelaxConfig(driver=driver)))
        seconds[driver] = time.perf_counter() - t0
    out = compare(a.work / "ase", a.work / "batched")
    out.update({"pred": str(a.pred), "seed": a.seed, "num": a.num,
                "wall_seconds_this_run": seconds})  # fmt: skip
    return out


def control(a: argparse.Namespace) -> dict:
    """The per-crystal path against itself with every input atom moved by ``--shift`` Å
    (seeded directions), on the crystals whose reference took ``--min-steps`` or more: how far
    rounding-sized differences alone carry FIRE on these crystals."""
    from structrepdiff.data.predictions import Prediction, load_predictions, save_predictions_csv
    from structrepdiff.relax.run import RelaxJob, run_relax

    ref = _rows(a.a)
    a.work.mkdir(parents=True, exist_ok=True)
    subset = a.work / "perturbed.csv.gz"
    if not subset.exists():
        rng, out = np.random.default_rng(a.seed), []
        for p in load_predictions(a.pred):
            r = ref.get(p.id)
            if p.structure is None or r is None or int(r["steps"] or 0) < a.min_steps:
                continue
            s = p.structure.copy()
            d = rng.normal(size=(len(s), 3))
            d *= a.shift / np.linalg.norm(d, axis=1, keepdims=True)
            for i in range(len(s)):
                s.translate_sites([i], d[i], frac_coords=False, to_unit_cell=False)
            out.append(Prediction(p.id, s))
        save_predictions_csv(out, subset)
    run_relax(RelaxJob(subset, a.work / "ase_perturbed", RelaxConfig(driver="ase")))
    res = compare(a.a, a.work / "ase_perturbed")
    res.update({"shift_angstrom": a.shift, "min_steps": a.min_steps, "seed": a.seed})
    if a.b:
        ids = set(_rows(a.work / "ase_perturbed"))
        res["batched_on_same_crystals"] = _restricted(a.a, a.b, ids)
    return res


def _restricted(a: Path, b: Path, ids: set[str]) -> dict:
    """`compare` of ``a`` and ``b`` on ``ids`` only (summary, no per-crystal list)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp)
        with open(b / "summary.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["id"] in ids]
        with open(sub / "summary.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        for r in rows:
            if r["cif"]:
                shutil.copy(b / r["cif"], sub / r["cif"])
        out = compare(a, sub)
    return {k: v for k, v in out.items() if k != "differ"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--pred", type=Path, required=True)
    r.add_argument("--num", type=int, default=100)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--work", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("--a", type=Path, required=True, help="reference (per-crystal) folder")
    c.add_argument("--b", type=Path, required=True, help="batched folder")
    k = sub.add_parser("control")
    k.add_argument("--a", type=Path, required=True, help="reference (per-crystal) folder")
    k.add_argument("--b", type=Path, help="batched folder, compared on the same crystals")
    k.add_argument("--pred", type=Path, required=True, help="the inputs of --a")
    k.add_argument("--min-steps", type=int, default=100)
    k.add_argument("--shift", type=float, default=1e-6)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--work", type=Path, required=True)
    for p in (r, c, k):
        p.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    out = {"run": run, "control": control}[a.cmd](a) if a.cmd != "compare" else compare(a.a, a.b)
    out.update({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": "2 vCPU, 1 torch thread, other jobs running",
                "config": RelaxConfig().to_dict()})  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "differ"}, indent=1))


if __name__ == "__main__":
    main()
