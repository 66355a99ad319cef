"""Shared fixtures: a seeded random generator for every test."""

import sys

import numpy as np
import pytest


def pytest_sessionfinish(session):
    """Under mpiexec, every rank destroys its PETSc garbage at the same point before exiting.

    petsc4py defers the destruction of parallel objects; PETSc's finalisation then cleans
    COMM_WORLD's deferred objects collectively, but only on the ranks that hold some.
    """
    from mpi4py import MPI

    if MPI.COMM_WORLD.size > 1 and "firedrake" in sys.modules:
        import gc

        from firedrake.petsc import PETSc

        gc.collect()
        PETSc.garbage_cleanup(MPI.COMM_WORLD)
        MPI.COMM_WORLD.barrier()


def pytest_configure(config):
    """Keep pytest's own options out of PETSc's options database (Firedrake reads sys.argv)."""
    del sys.argv[1:]


@pytest.fixture(autouse=True)
def rng():
    """A NumPy generator seeded per test."""
    return np.random.default_rng(20261122)
