"""A/B timing of the EAD kernel: this checkout vs the version of `ead.py` at another commit.

Both versions run in one process on the same crystals, alternating, best of ``--repeats``;
the report is the ratio, since this machine is noisy. Example:

    python benchmarks/ead_ab.py --baseline 32a98f8 --n 48
    python benchmarks/ead_ab.py --baseline 3088bb3 --backward --preset small --n 8 \
        --datasets mp_20 --repeats 10

With ``--backward`` each call is what one reconstruction step costs: EAD forward plus the
gradient of its sum w.r.t. positions (neighbour list with a 0.5 Å skin, built once), and the
differences reported are those of the gradients.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from structrepdiff.data.io import load_split
from structrepdiff.descriptor import ead as ead_new
from structrepdiff.descriptor.config import get_preset
from structrepdiff.geometry.crystals import Crystals
from structrepdiff.geometry.neighbors import neighbor_list
from structrepdiff.representation.encode import canonical

ROOT = Path(__file__).resolve().parents[1]


def load_baseline(commit: str):
    """Import `src/structrepdiff/descriptor/ead.py` as it was at ``commit``."""
    src = subprocess.run(
        ["git", "show", f"{commit}:src/structrepdiff/descriptor/ead.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "ead_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("ead_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ead_baseline"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def best_time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def rel_diff(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Max relative difference over features above 1e-6 of the largest one."""
    x, ref = x.double(), ref.double()
    big = ref > 1e-6 * ref.max()
    return ((x - ref).abs()[big] / ref[big]).max().item()


def evaluate(mod, c: Crystals, cfg, nl, backward: bool) -> torch.Tensor:
    """EAD (N, F), or with ``backward`` the gradient (N, 3) of its sum w.r.t. positions."""
    if not backward:
        return mod.compute_ead(c, cfg).ead
    pos = c.positions.clone().requires_grad_(True)
    ead = mod.compute_ead(Crystals(pos, c.numbers, c.cell, c.batch), cfg, nl).ead
    return torch.autograd.grad(ead.sum(), pos)[0]


def rel_diff_any(x: torch.Tensor, ref: torch.Tensor, backward: bool) -> float:
    if backward:
        return ((x.double() - ref.double()).abs().max() / ref.double().abs().max()).item()
    return rel_diff(x, ref)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="git commit of the baseline ead.py")
    p.add_argument("--datasets", nargs="+", default=["perov_5", "carbon_24", "mp_20"])
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=48, help="first N rows of the split")
    p.add_argument("--preset", default="paper")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backward", action="store_true", help="time forward + position gradient")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    old, cfg = load_baseline(args.baseline), get_preset(args.preset)
    print(
        "| dataset | dtype | crystals | baseline s | this s | speed-up "
        "| max rel. diff to baseline | max rel. diff to float64 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for ds in args.datasets:
        structures = [canonical(s) for s in load_split(ds, args.split, limit=args.n).structures]
        ref = None
        for dtype in (torch.float64, torch.float32):
            c = Crystals.from_structures(structures, dtype=dtype)
            nl = neighbor_list(c, cfg.cutoff + 0.5) if args.backward else None
            t_old, base = best_time(
                lambda c=c, nl=nl: evaluate(old, c, cfg, nl, args.backward), args.repeats
            )
            t_new, out = best_time(
                lambda c=c, nl=nl: evaluate(ead_new, c, cfg, nl, args.backward), args.repeats
            )
            ref = out.double() if ref is None else ref
            d_base = rel_diff_any(out, base, args.backward)
            d_ref = rel_diff_any(out, ref, args.backward)
            print(
                f"| {ds} | {str(dtype)[6:]} | {len(structures)} | {t_old:.4f} | {t_new:.4f} "
                f"| {t_old / t_new:.2f}x | {d_base:.1e} | {d_ref:.1e} |"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
