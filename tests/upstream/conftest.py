"""Fixtures for Firedrake's vendored adjoint tests, and their routing to fe_adjoint.

What the vendored files use from Firedrake's ``tests/firedrake/conftest.py`` (see
README.rst for the commit) is mirrored here: the ``skipcomplex`` marker, the
module-scoped ``check_empty_tape`` check and the ``set_test_tape`` fixture. The
``parallel`` marker and its ``mpiexec`` handling come from the mpi-pytest plugin, as in
Firedrake.

``FE_ADJOINT_UPSTREAM`` selects the mode (default ``fe``):

``plain``
    pyadjoint and Firedrake are left alone: the tests run as they do upstream.
``fe``
    ``pyadjoint.tape.Tape.enable_checkpointing`` is replaced, for the tests of this
    package, by a call to ``fe_adjoint.enable_checkpointing(schedule, disk_dir=...)`` on
    that tape (made the working tape first), with a temporary ``disk_dir`` shared by all
    MPI ranks.
"""

import os
import shutil
import tempfile

# As Firedrake's conftest: PETSc does not know what to do with pytest's arguments.
os.environ.setdefault("FIREDRAKE_DISABLE_OPTIONS_LEFT", "1")

import pytest  # noqa: E402

from . import _routing  # noqa: E402
from ._routing import MODE, MODES, ROUTED_TO_FE_ADJOINT  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_configure(config):
    if MODE not in MODES:
        raise pytest.UsageError(
            f"FE_ADJOINT_UPSTREAM={MODE!r}: expected one of {', '.join(MODES)}"
        )
    for line in (
        "skipcomplex: mark as skipped in complex mode",
        "parallel(nprocs): mark test to run in parallel on nprocs processors (default: 3)",
    ):
        config.addinivalue_line("markers", line)


def pytest_report_header(config):
    return f"tests/upstream: FE_ADJOINT_UPSTREAM={MODE}"


def pytest_collection_modifyitems(session, config, items):
    from firedrake.utils import complex_mode
    from mpi4py import MPI

    # mpi-pytest's forking mode (a plain ``pytest`` run starting ``mpiexec`` per parallel
    # test) fails here before any test code runs: the ``mpiexec`` started from a process
    # that has initialised MPI as an Open MPI singleton inherits the singleton's
    # environment and exits with status 1 (the repository's own tests/parallel fail the
    # same way). Parallel tests are run under an outer ``mpiexec -n 3`` instead.
    forking = MPI.COMM_WORLD.size == 1 and "_PYTEST_MPI_CHILD_PROCESS" not in os.environ
    for item in items:
        if not str(item.path).startswith(_HERE):
            continue
        if forking and item.get_closest_marker("parallel") is not None:
            item.add_marker(pytest.mark.skip(
                reason="run parallel tests under mpiexec: mpiexec -n 3 --oversubscribe "
                       "python -m pytest -m parallel tests/upstream"))
        if complex_mode:
            marker = item.get_closest_marker("skipcomplex")
            if marker is not None:
                reason = marker.kwargs.get("reason", "Test makes no sense in complex mode")
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module", autouse=True)
def check_empty_tape(request):
    """Check that the tape is empty at the end of each module (as Firedrake's conftest)."""
    from pyadjoint.tape import annotate_tape, get_working_tape

    def finalizer():
        # make sure taping is switched off
        assert not annotate_tape()

        # make sure the tape is empty
        tape = get_working_tape()
        if tape is not None:
            assert len(tape.get_blocks()) == 0

    request.addfinalizer(finalizer)


@pytest.fixture
def set_test_tape():
    """Set a new working tape specifically for this test (as Firedrake's conftest)."""
    from pyadjoint.tape import continue_annotation, pause_annotation, set_working_tape

    continue_annotation()
    with set_working_tape():
        yield
    pause_annotation()


@pytest.fixture(scope="package")
def fe_adjoint_disk_dir():
    """A temporary directory, the same on every MPI rank, removed afterwards."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    path = tempfile.mkdtemp(prefix="fe_adjoint_upstream-") if comm.rank == 0 else None
    path = comm.bcast(path, root=0)
    yield path
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package", autouse=True)
def route_enable_checkpointing(request):
    """In ``fe`` mode, send ``Tape.enable_checkpointing`` to fe_adjoint."""
    if not ROUTED_TO_FE_ADJOINT:
        yield
        return

    from pyadjoint.tape import Tape, get_working_tape, set_working_tape

    import fe_adjoint

    disk_dir = request.getfixturevalue("fe_adjoint_disk_dir")
    _routing.FE_DISK_DIR = disk_dir

    def enable_checkpointing(self, schedule, gc_timestep_frequency=None, gc_generation=2):
        # fe_adjoint.enable_checkpointing works on the working tape.
        if get_working_tape() is not self:
            set_working_tape(self)
        fe_adjoint.enable_checkpointing(schedule, disk_dir=disk_dir)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Tape, "enable_checkpointing", enable_checkpointing)
        yield
