"""Template substitution, the CSP floor (issue #26, deliverable 8; CSPML-like reference row).

For each seeded test crystal (MP-20 stratified by size): the val crystal with the same
anonymous formula nearest in composition (`pipeline.anchor.retrieve` without a group), its
species replaced rank for rank, then — with ``--relax`` — relaxed with CHGNet (FIRE, fmax 0.1
eV/Å, ``--steps``). Match = CDVAE's StructureMatcher against the test crystal, before and
after relaxation; a composition whose anonymous formula val lacks is a miss with that reason.
The prediction is a relabelled training crystal: it has no novelty of structure type by
construction, which is the point of the row (what a generative row must beat). One JSON line
per crystal in ``--out/<dataset>.jsonl`` (resumable), then ``<dataset>_summary.json``.

    python benchmarks/template_substitution.py --dataset mp_20 --num 200 --relax
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from structrepdiff.data.io import load_split, seeded_subset
from structrepdiff.evaluate.reconstruction import reconstruction_match, reconstruction_matcher
from structrepdiff.evaluate.symmetry import space_group
from structrepdiff.pipeline.anchor import retrieve
from structrepdiff.reconstruct.symmetric import SymTemplates
from structrepdiff.symmetry.analyze import cached_description


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--relax", action="store_true", help="relax with CHGNet")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--data-dir")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/template_substitution"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    ids, structures = seeded_subset(load_split(a.dataset, "test", a.data_dir), a.num, a.seed,
                                    a.dataset == "mp_20")  # fmt: skip
    tpl = SymTemplates(cached_description(a.dataset, "val", a.data_dir))
    matcher = reconstruction_matcher()
    calc = cfg = None
    if a.relax:
        from structrepdiff.relax.config import RelaxConfig
        from structrepdiff.relax.core import relax_structure
        from structrepdiff.relax.potential import load_calculator

        calc, cfg = load_calculator("chgnet"), RelaxConfig(max_steps=a.steps)
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{a.dataset}.jsonl"
    done = {json.loads(x)["id"] for x in path.read_text().splitlines()} if path.exists() else set()
    with open(path, "a") as fh:
        for rid, true in zip(ids, structures, strict=True):
            if rid in done:
                continue
            t0 = time.perf_counter()
            w = retrieve(tpl, np.array(true.atomic_numbers))
            rec = {"id": rid, "n_atoms": len(true), "found": w is not None}
            if w is None:
                rec["reason"] = "no val crystal with the same anonymous formula"
            else:
                s = w.to_structure()
                sg = space_group(s)
                rec.update(template_sg=w.sg, p1=bool(sg.value and sg.value[0] == 1),
                           matched=reconstruction_match(s, true, matcher).matched)  # fmt: skip
                if a.relax:
                    r = relax_structure(s, calc, cfg)
                    rec.update(relax_status=r.status, relaxed_matched=bool(
                        r.structure is not None
                        and reconstruction_match(r.structure, true, matcher).matched))  # fmt: skip
            rec["seconds"] = time.perf_counter() - t0
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    summary = {"n": len(rows), "split": "test crystals; templates from val",
               "found_pct": 100 * np.mean([r["found"] for r in rows]),
               "match_pct": 100 * np.mean([r.get("matched", False) for r in rows]),
               "p1_pct": 100 * np.mean([r.get("p1", False) for r in rows])}  # fmt: skip
    if a.relax:
        summary["relaxed_match_pct"] = 100 * np.mean([r.get("relaxed_matched", False)
                                                      for r in rows])  # fmt: skip
    (a.out / f"{a.dataset}_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
