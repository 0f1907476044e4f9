"""Load a universal potential as an ASE calculator, offline (weights ship in the wheels).

Energies come out on the Materials Project 2020-corrected scale for both potentials: CHGNet
is trained on it; SevenNet-0 is not, so its energies are passed through pymatgen's
``MaterialsProject2020Compatibility`` (see `corrected_energy`).
"""

from __future__ import annotations

from importlib import metadata

MAX_Z = {"chgnet": 94, "sevennet": 89}  # elements each potential was trained on (Z ≤ this)


def potential_version(name: str) -> str:
    """``"<package> <version>"`` of the installed potential, for provenance."""
    pkg = {"chgnet": "chgnet", "sevennet": "sevenn"}[name]
    try:
        return f"{pkg} {metadata.version(pkg)}"
    except metadata.PackageNotFoundError:
        return f"{pkg} (not installed)"


INSTALL = {"chgnet": "relaxation needs CHGNet: pip install 'structrepdiff[mlip]'",
           "sevennet": "SevenNet is not installed: pip install sevenn"}  # fmt: skip


def require_potential(name: str) -> None:
    """Raise the one-line ImportError of `load_calculator` now, before any output is written."""
    from importlib.util import find_spec

    if name not in INSTALL:
        raise ValueError(f"unknown potential {name!r}")
    if find_spec({"chgnet": "chgnet", "sevennet": "sevenn"}[name]) is None:
        raise ImportError(INSTALL[name])


def load_calculator(name: str = "chgnet", device: str = "cpu"):
    """An ASE calculator for ``name``; a one-line ImportError names the extra to install."""
    from structrepdiff.device import check_device

    check_device(device)
    if name == "chgnet":
        try:
            from chgnet.model import CHGNet, CHGNetCalculator
        except ImportError as exc:
            raise ImportError(INSTALL[name]) from exc
        model = CHGNet.load(use_device=device, verbose=False)
        return CHGNetCalculator(model=model, use_device=device)
    if name == "sevennet":
        try:
            from sevenn.calculator import SevenNetCalculator
        except ImportError as exc:
            raise ImportError(INSTALL[name]) from exc
        return SevenNetCalculator("7net-0", device=device)
    raise ValueError(f"unknown potential {name!r}")


def corrected_energy(name: str, structure, energy: float) -> float:
    """Total energy (eV) on the MP2020-corrected scale: CHGNet's as is, SevenNet's corrected."""
    if name == "chgnet":
        return energy
    from pymatgen.entries.compatibility import MaterialsProject2020Compatibility
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    entry = ComputedStructureEntry(structure, energy, parameters={"run_type": "GGA"})
    out = MaterialsProject2020Compatibility(check_potcar=False).process_entry(entry)
    return energy if out is None else out.energy
