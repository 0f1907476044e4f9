"""Relaxation that keeps the group, then a free stage (issue #26, deliverable 7).

Each crystal of ``--cifs`` (e.g. the candidates `symmetric_candidates.py` keeps) is relaxed
with CHGNet twice from the same input: one free FIRE stage (today's default), and a first
stage of ``--symmetric-steps`` keeping the space group (ASE's FixSymmetry at 0.01 Å) followed
by the free stage, same total budget. Records per crystal: RMSD to the input and P1 (symprec
0.1 Å) before, after the symmetric stage and after the free stage, energies and steps. One
JSON line per crystal in ``--out``; resumable.

    python studies/symmetric_relaxation.py --cifs runs/symmetric_candidates/mp_20_test --num 30
    python studies/symmetric_relaxation.py --cifs runs/csp/mp_20_k1_val_sg --glob "*.cif"
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from pymatgen.core import Structure

from structrepdiff.evaluate.symmetry import space_group
from structrepdiff.relax import RelaxConfig, load_calculator, relax_structure
from structrepdiff.relax.core import displacement_rmsd


def _rmsd(before: Structure, after: Structure | None) -> float | None:
    return None if after is None else displacement_rmsd(before, after)


def _sg(s: Structure | None) -> int | None:
    r = space_group(s)
    return r.value[0] if r.value else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cifs", type=Path, required=True)
    ap.add_argument("--num", type=int, default=30)
    ap.add_argument("--glob", default="*_0.cif",
                    help="which files of --cifs (default: each crystal's most likely candidate "
                    "of symmetric_candidates.py; '*.cif' for a generate / CSP folder)")  # fmt: skip
    ap.add_argument("--symmetric-steps", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/symmetric_relaxation"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    files = sorted(a.cifs.glob(a.glob))[: a.num]
    calc = load_calculator("chgnet")
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{a.cifs.name}.jsonl"
    done = {json.loads(x)["id"] for x in path.read_text().splitlines()} if path.exists() else set()
    configs = {"free": RelaxConfig(),
               "fixsym_then_free": RelaxConfig(symmetric_steps=a.symmetric_steps)}  # fmt: skip
    with open(path, "a") as fh:
        for f in files:
            if f.stem in done:
                continue
            s = Structure.from_file(f)
            rec = {"id": f.stem, "n_atoms": len(s), "sg_input": _sg(s)}
            for name, cfg in configs.items():
                r = relax_structure(s, calc, cfg)
                rec[name] = {"status": r.status, "steps": r.steps, "energy": r.energy_after,
                             "rmsd": r.rmsd, "sg": _sg(r.structure),
                             "rmsd_symmetric_stage": _rmsd(s, r.symmetric),
                             "sg_symmetric_stage": _sg(r.symmetric) if r.symmetric else None,
                             "symmetric_steps": r.symmetric_steps}  # fmt: skip
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
