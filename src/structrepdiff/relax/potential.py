"""Load a universal potential as an ASE calculator, offline (weights ship in the wheels).

Energies come out on the Materials Project 2020-corrected scale for both potentials: CHGNet
is trained on it; SevenNet-0 is not, so its energies are passed through pymatgen's
``MaterialsProject2020Compatibility`` (see `corrected_energy`).
"""

from __future__ import annotations

import itertools
from importlib import metadata

MAX_Z = {"chgnet": 94, "sevennet": 89}  # elements each potential was trained on (Z ≤ this)


PACKAGES = {"chgnet": "chgnet", "sevennet": "sevenn"}  # the package each potential ships in


def potential_version(name: str) -> str:
    """``"<package> <version>"`` of the installed potential, for provenance."""
    pkg = PACKAGES[name]
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
    """Total energy (eV) on the MP2020-corrected scale: CHGNet's as is, SevenNet's corrected.

    SevenNet-0 learned Materials Project's raw energies, which are GGA+U energies for oxides
    and fluorides of Co, Cr, Fe, Mn, Mo, Ni, V and W: such a crystal enters the correction as
    a GGA+U entry with the U values the correction scheme expects (a GGA entry would be
    refused and left uncorrected, 0.4 eV/atom off; BENCHMARKS.md, issue 28)."""
    if name == "chgnet":
        return energy
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    compat = _mp2020()
    elements = sorted(structure.composition.elements, key=lambda el: el.X)
    u = compat.u_settings.get(elements[-1].symbol, {})
    hubbards = {el.symbol: float(u.get(el.symbol, 0.0)) for el in elements}
    run_type = "GGA+U" if any(hubbards.values()) else "GGA"
    entry = ComputedStructureEntry(structure, energy,
                                   parameters={"run_type": run_type, "hubbards": hubbards})
    out = compat.process_entry(entry)
    return energy if out is None else out.energy


_COMPAT = None


def _mp2020():
    global _COMPAT
    if _COMPAT is None:
        from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

        _COMPAT = MaterialsProject2020Compatibility(check_potcar=False)
    return _COMPAT


GPA = 1 / 160.21766208  # eV/Å³ per GPa (ase.units.GPa)


def _crystals(positions, cells, numbers, batch) -> list:
    """Per-crystal (numbers (n,), positions (n, 3), cell (3, 3)) numpy triples."""
    import numpy as np

    pos, cell, num, bat = (t.detach().cpu().numpy() for t in (positions, cells, numbers, batch))
    bounds = np.searchsorted(bat, np.arange(len(cell) + 1))
    pairs = enumerate(itertools.pairwise(bounds))
    return [(num[a:b], pos[a:b], cell[k]) for k, (a, b) in pairs]


class BatchPotential:
    """Energies (B,) eV, forces (N, 3) eV/Å and stresses (B, 3, 3) eV/Å³ (ASE's sign) of B
    crystals in the batched layout, float64, with a per-crystal reason ("" when fine); a
    crystal whose evaluation failed gets NaN values and its reason, the others are unaffected.

    This base class evaluates crystal by crystal with an ASE calculator (SevenNet-0, or any
    ASE calculator); `CHGNetBatch` sends the whole batch through CHGNet's batched graph path.
    """

    def __init__(self, calculator, name: str = "calculator") -> None:
        self.calculator, self.name = calculator, name

    def __call__(self, positions, cells, numbers, batch):
        import torch

        b, n = cells.shape[0], positions.shape[0]
        energy = torch.full((b,), float("nan"), dtype=torch.float64)
        forces = torch.full((n, 3), float("nan"), dtype=torch.float64)
        stress = torch.full((b, 3, 3), float("nan"), dtype=torch.float64)
        reasons, a = [""] * b, 0
        counts = torch.bincount(batch, minlength=b).tolist()
        for k, one in enumerate(self.evaluate_each(_crystals(positions, cells, numbers, batch))):
            m = counts[k]
            if isinstance(one, str):
                reasons[k] = one
            else:
                energy[k] = one[0]
                forces[a : a + m] = torch.as_tensor(one[1], dtype=torch.float64)
                stress[k] = torch.as_tensor(one[2], dtype=torch.float64)
            a += m
        return energy, forces, stress, reasons

    def evaluate_each(self, crystals: list) -> list:
        """[(energy, forces (n, 3), stress (3, 3)) or a reason] per (numbers, positions, cell)."""
        from ase import Atoms

        out = []
        for num, pos, cell in crystals:
            atoms = Atoms(numbers=num, positions=pos, cell=cell, pbc=True)
            atoms.calc = self.calculator
            try:
                out.append((float(atoms.get_potential_energy()), atoms.get_forces(),
                            atoms.get_stress(voigt=False)))  # fmt: skip
            except Exception as exc:  # third-party code: any failure is this crystal's reason
                out.append(f"failed: {type(exc).__name__}: {exc}")
        return out


class CHGNetBatch(BatchPotential):
    """CHGNet over the batch, ``chunk`` crystals per forward pass (`efs`): `CPU_CHUNK` on a
    CPU, the whole batch on a GPU."""

    def __init__(self, model, chunk: int) -> None:
        super().__init__(None, "chgnet")
        self.model, self.chunk = model, chunk

    def evaluate_each(self, crystals: list) -> list:
        from pymatgen.core import Lattice, Structure

        out: list = [None] * len(crystals)
        graphs, where = [], []
        for k, (num, pos, cell) in enumerate(crystals):
            try:
                s = Structure(Lattice(cell), num.tolist(), pos, coords_are_cartesian=True)
                graphs.append(self.graph(s))
                where.append(k)
            except Exception as exc:
                out[k] = f"failed: {type(exc).__name__}: {exc}"
        results: list = []
        for k in range(0, len(graphs), self.chunk):
            part = graphs[k : k + self.chunk]
            try:
                results += efs(self.model, part)
            except Exception:  # one bad crystal must not sink the batch: retry one by one
                results += [self._one(g) for g in part]
        for k, r in zip(where, results, strict=True):
            out[k] = r
        return out

    def graph(self, structure):
        """CHGNet's graph of one crystal (built on the CPU by CHGNet's converter)."""
        return self.model.graph_converter(structure)

    def _one(self, graph):
        try:
            return efs(self.model, [graph])[0]
        except Exception as exc:
            return f"failed: {type(exc).__name__}: {exc}"


def efs(model, graphs: list) -> list[tuple[float, object, object]]:
    """[(energy eV, forces (n, 3) eV/Å, stress (3, 3) eV/Å³)] of CHGNet ``graphs`` from one
    forward pass and one backward pass without a graph of its own: ``predict_graph`` takes two
    backward passes that each build a graph for training (``create_graph=True``), about 2/3 of
    its time at inference. Same numbers (checked in tests against ``predict_graph``)."""
    import torch
    from chgnet.model.model import BatchedGraph

    if model.training:  # eval() walks every module: once, not per call
        model.eval()
    g = BatchedGraph.from_graphs(graphs, bond_basis_expansion=model.bond_basis_expansion,
                                 angle_basis_expansion=model.angle_basis_expansion,
                                 compute_stress=True)  # fmt: skip
    pred = model._compute(g, compute_force=False, compute_stress=False)
    n = pred["atoms_per_graph"]
    energy = pred["e"] * n  # eV: the model's per-atom energy times the atom count
    if model.composition_model is not None:
        energy = energy + model.composition_model(graphs) * n
    grads = torch.autograd.grad(energy.sum(), [*g.atom_positions, *g.strains])
    b = len(graphs)
    e = energy.detach().cpu().numpy()
    return [(float(e[k]), -grads[k].cpu().numpy(),
             (grads[b + k] / g.volumes[k]).cpu().numpy()) for k in range(b)]  # fmt: skip


# CHGNet crystals per forward pass on a CPU. One: each crystal's forces are then bitwise the same
# whatever else is in the batch, so results do not depend on the batch size, the workers or a
# resume; chunks of 4 were 1.10x faster (benchmarks/chgnet_batching.py, BENCHMARKS.md).
CPU_CHUNK = 1


def load_batch_potential(name: str = "chgnet", device: str = "cpu") -> BatchPotential:
    """The batched form of `load_calculator`'s potential: CHGNet's batched graph path, else
    the calculator crystal by crystal (SevenNet-0, or a stand-in calculator in tests)."""
    calc = load_calculator(name, device)
    if name == "chgnet" and hasattr(calc, "model"):
        return CHGNetBatch(calc.model, CPU_CHUNK if device == "cpu" else 1024)
    return BatchPotential(calc, name)
