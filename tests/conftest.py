"""Shared fixtures: a seeded random generator for every test."""

import sys

import numpy as np
import pytest


def pytest_sessionfinish(session):
    """Under mpiexec, every rank lets go of the last tape and destroys its PETSc garbage at
    the same point before exiting.

    Left to the interpreter's shutdown, the objects the working tape holds (HDF5
    checkpoint files, PETSc objects, whose destruction is collective) are destroyed in an
    order that differs between ranks: stops 20 and 21 hung there after every test passed.
    """
    from mpi4py import MPI

    if MPI.COMM_WORLD.size > 1 and "firedrake" in sys.modules:
        import gc

        from firedrake.petsc import PETSc
        from pyadjoint import Tape, get_working_tape, set_working_tape

        tape = get_working_tape()
        tape.clear_tape()
        tape._package_data.clear()
        set_working_tape(Tape())
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
