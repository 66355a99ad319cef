"""Which DoF order the optimiser's control vector has: a fingerprint of the mesh partition.

The control vector an optimiser sees is the controls' owned values gathered in rank order,
so its order depends on how the mesh was distributed and numbered. A history recorded
under one distribution cannot be answered under another: its vectors would be read in the
wrong order, silently, wherever the control is zero or constant. The fingerprint is a hash
of every control mesh's owned coordinates and every control's owned length, rank by rank.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
from petsc4py import PETSc

_REPRODUCIBLE = ("simple", "shell")  # partitioners that distribute the same way every run
# How a run under mpiexec computes the same bits as the job it continues
REPRODUCIBLE_HINT = (
    "distribute the mesh reproducibly (distribution_parameters={'partitioner_type': "
    "'simple'} on the mesh, or the PETSc option -petscpartitioner_type simple: Firedrake's "
    "default partitioner can differ from run to run) and solve with a reproducible "
    "parallel LU (SuperLU_DIST, not MUMPS), the Control's riesz_map too"
)


def _on_meshes(controls):
    """(value, mesh) of each control on a mesh (not Constants, AdjFloats: alike on all ranks)."""
    for control in controls:
        space = getattr(control.control, "function_space", lambda: None)()
        if space is not None:
            yield control.control, space.mesh()


def partition_fingerprint(controls, comm) -> str:
    """A hash of the DoF order the gathered control vector has on ``comm``."""
    local = []
    for value, mesh in _on_meshes(controls):
        with value.dat.vec_ro as vec:
            local.append(np.int64(vec.getLocalSize()).tobytes())
        local.append(np.ascontiguousarray(mesh.coordinates.dat.data_ro).tobytes())
    gathered = comm.gather(b"".join(local), root=0)
    digest = None
    if comm.rank == 0:
        md5 = hashlib.md5()
        for part in gathered:
            md5.update(np.int64(len(part)).tobytes())
            md5.update(part)
        digest = md5.hexdigest()
    return comm.bcast(digest, root=0)


def warn_if_not_reproducible(controls, comm, history_path: str) -> None:
    """Warn when a control's mesh was distributed by a partitioner that may differ next run."""
    if comm.size == 1 or comm.rank != 0:  # rank 0 speaks for all
        return
    for _, mesh in _on_meshes(controls):
        partitioner = PETSc.Options().getString("petscpartitioner_type", "") or getattr(
            mesh.topology, "_distribution_parameters", {}).get("partitioner_type")
        if partitioner is not None and partitioner not in _REPRODUCIBLE:
            warnings.warn(
                f"fe_adjoint: the mesh was distributed by the {partitioner!r} partitioner, "
                "which can distribute it differently from run to run; a job run again can "
                f"continue the history {history_path} only under the same distribution: "
                + REPRODUCIBLE_HINT,
                stacklevel=3,
            )
            return
