"""torch.compile as a lever (issue #16, deliverable 2): 30 Adam steps on the first 8 MP-20 test
crystals (true positions + 0.3 Å noise, small preset, float32, one thread), eager against
`torch.compile(descriptor_loss, dynamic=True)`; medians of 3, and the first compiled call
(compilation included). Writes ``--out``.

    python studies/compile_probe.py
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

import structrepdiff.reconstruct.optimize as opt
from structrepdiff.data.io import load_split
from structrepdiff.data.registry import get_dataset
from structrepdiff.descriptor.config import get_preset
from structrepdiff.reconstruct.config import ReconstructConfig
from structrepdiff.representation.encode import Representation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/compile_probe.json"))
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    info = get_dataset("mp_20")
    structures = load_split("mp_20", "test", limit=8).structures
    rep = Representation(get_preset("small"), info.atomic_numbers, info.n_max)
    _, s, true = opt.true_targets([str(k) for k in range(8)], structures, rep, torch.float32)
    pos = true + 0.3 * torch.randn(true.shape, generator=torch.Generator().manual_seed(0))
    cfg = ReconstructConfig(steps=30, threshold=0.0, patience=0)

    def run() -> float:
        t0 = time.perf_counter()
        opt.descend(pos, s, rep.ead, cfg)
        return time.perf_counter() - t0

    eager = sorted(run() for _ in range(3))[1]
    opt.descriptor_loss = torch.compile(opt.descriptor_loss, dynamic=True)
    first = run()
    compiled = sorted(run() for _ in range(3))[1]
    result = {"eager_30_steps_s": eager, "compiled_first_s": first,
              "compiled_30_steps_s": compiled}  # fmt: skip
    a.out.write_text(json.dumps(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
