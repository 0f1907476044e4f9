"""Space groups inside the model: Wyckoff orbits as affine maps of free parameters, the
crystal-system lattice parametrisation, and adapters to pyxtal / spglib (docs/method.md).

Everything here is integer tables and small differentiable maps; reconstruction on Wyckoff
parameters lives in `structrepdiff.reconstruct.symmetric`.
"""

from structrepdiff.symmetry.groups import (
    Orbit,
    centering_matrix,
    crystal_system,
    group_orbits,
    pattern_problem,
)

__all__ = ["Orbit", "centering_matrix", "crystal_system", "group_orbits", "pattern_problem"]
