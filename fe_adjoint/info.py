"""Versions of the stack fe_adjoint runs on, for bug reports and ``fe-adjoint info``."""

from __future__ import annotations

from importlib import metadata

_PETSC_EXTERNALS = ("mumps", "superlu_dist", "umfpack", "cholmod", "klu", "hdf5", "metis",
                    "ptscotch", "scalapack", "fftw", "hwloc", "netcdf", "pnetcdf", "zlib",
                    "hypre", "cuda")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def stack_versions() -> dict[str, str]:
    """The stack's versions, the MPI size and where checkpoint files go by default."""
    from mpi4py import MPI
    from petsc4py import PETSc

    import fe_adjoint

    from .jobs.scratch import node_local_dir

    major, minor, patch = PETSc.Sys.getVersion()
    config = PETSc.Sys.getVersionInfo()
    externals = sorted(name for name in _PETSC_EXTERNALS if PETSc.Sys.hasExternalPackage(name))
    return {
        "fe_adjoint": fe_adjoint.__version__,
        "firedrake": _version("firedrake"),
        "PETSc": f"{major}.{minor}.{patch}{'' if config.get('release', True) else ' (dev)'}",
        "PETSc external packages": ", ".join(externals),
        "petsc4py": _version("petsc4py"),
        "pyadjoint": _version("pyadjoint-ad"),
        "checkpoint_schedules": _version("checkpoint-schedules"),
        "mpi4py": _version("mpi4py"),
        "MPI": MPI.Get_library_version().splitlines()[0].strip(),
        "MPI size": str(MPI.COMM_WORLD.size),
        "default disk_dir": node_local_dir(),
    }


def info() -> str:
    """Print and return the versions of the stack fe_adjoint runs on."""
    text = "\n".join(f"{name:<24} {value}" for name, value in stack_versions().items())
    print(text)
    return text
