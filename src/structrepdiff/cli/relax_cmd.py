"""`structrepdiff relax`: relax crystals with a universal potential (CHGNet by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

from structrepdiff.cli import codes
from structrepdiff.relax.config import DRIVERS, POTENTIALS, RelaxConfig
from structrepdiff.relax.run import RelaxJob

_D = RelaxConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "relax",
        help="relax crystals with a universal machine-learned potential",
        description="FIRE on positions and cell (the Fréchet cell filter), many crystals per "
        "potential call, with CHGNet or SevenNet-0. Reads any predictions `evaluate` reads; "
        "writes relaxed CIFs, relaxed.extxyz and summary.csv (energies before/after in "
        "eV/atom, steps, RMSD, reason) to --out, row by row; rerunning resumes.",
    )
    p.add_argument(
        "--pred",
        required=True,
        type=Path,
        help="folder with summary.csv or CIFs, .cif, .extxyz or CDVAE-format .csv",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_relax_options(p, "--device")
    p.add_argument("--workers", type=int, default=RelaxJob.workers,
                   help="processes, one potential each (default: one per core, no more than "
                        "batches)")  # fmt: skip
    p.add_argument("--scheduler", help="relax on Dask workers instead: local:N or an address")
    p.add_argument("--limit", type=int, help="only the first N crystals")
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def add_relax_options(p: argparse.ArgumentParser, *device_flags: str) -> None:
    """Relaxation options shared by `relax` and `generate --relax` (defaults: RelaxConfig);
    ``device_flags`` are more names of ``--relax-device`` (`relax` calls it ``--device``)."""
    p.add_argument("--potential", choices=POTENTIALS, default=_D.potential)
    p.add_argument("--fmax", type=float, default=_D.fmax, help="force threshold, eV/Å")
    p.add_argument("--relax-steps", type=int, default=_D.max_steps, help="FIRE steps at most")
    p.add_argument(
        "--min-distance",
        type=float,
        default=_D.min_distance,
        help="report, do not relax, crystals with atoms closer than this (Å)",
    )
    p.add_argument("--symmetric-steps", type=int, default=_D.symmetric_steps,
                   help="FIRE steps of a first stage that keeps the space group (FixSymmetry); "
                   "the free stage gets the rest of --relax-steps")  # fmt: skip
    p.add_argument("--relax-symprec", type=float, default=_D.symprec,
                   help="tolerance (Å) of the symmetry the first stage keeps")  # fmt: skip
    p.add_argument("--relax-batch", type=int, default=_D.batch_size,
                   help="crystals relaxed together, one potential call per step")  # fmt: skip
    p.add_argument("--relax-driver", choices=DRIVERS, default=_D.driver,
                   help="batched FIRE, or ASE's FIRE one crystal at a time (the reference)")
    p.add_argument(*device_flags, "--relax-device", dest="relax_device",
                   help=f"torch device of the potential (default: --device where the command "
                   f"has one, else {_D.device})")  # fmt: skip


def relax_config(args: argparse.Namespace) -> RelaxConfig:
    device = args.relax_device or getattr(args, "device", None) or _D.device
    return RelaxConfig(potential=args.potential, fmax=args.fmax, max_steps=args.relax_steps,
                       min_distance=args.min_distance, device=device,
                       symmetric_steps=args.symmetric_steps,
                       symprec=args.relax_symprec, batch_size=args.relax_batch,
                       driver=args.relax_driver)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from structrepdiff.relax.run import RelaxJob, run_relax

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be positive")
    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be positive")
    job = RelaxJob(args.pred, args.out, relax_config(args), args.workers, args.limit,
                   args.force, not args.no_progress)  # fmt: skip
    from structrepdiff.cluster import open_client

    with open_client(args.scheduler) as client:
        s = run_relax(job, client)
    total = sum(s.counts.values())
    print(f"relaxed {total} crystals in {s.seconds:.1f} s -> {s.out}/summary.csv "
          f"({s.done_before} already done before this run)")  # fmt: skip
    for status, n in sorted(s.counts.items()):
        print(f"  {status:14s} {n}")
    produced = sum(n for st, n in s.counts.items() if st in ("converged", "not_converged"))
    return codes.OK if produced or s.done_before else codes.NOTHING
