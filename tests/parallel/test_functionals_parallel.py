"""Under mpiexec -n 2 PointMisfit gives the serial gradient: mesh split (receivers on both
ranks) and two Ensemble members (one source each, as Firedrake's FWI demo runs them)."""

import numpy as np
import pytest


def _by_coordinates(gradient):
    """Every rank's (x, y, value) of a P1 gradient, sorted by coordinates: a layout-free view."""
    from firedrake import Function, SpatialCoordinate, VectorFunctionSpace

    mesh = gradient.function_space().mesh()
    xy = Function(VectorFunctionSpace(mesh, "CG", 1)).interpolate(SpatialCoordinate(mesh))
    rows = np.column_stack([xy.dat.data_ro, gradient.dat.data_ro])
    rows = np.concatenate(mesh.comm.allgather(rows))
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


@pytest.mark.parallel(nprocs=2)
def test_point_misfit_on_a_split_mesh_matches_serial(tmp_path):
    from checkpoint_schedules import MixedCheckpointSchedule, SingleMemoryStorageSchedule
    from firedrake import UnitSquareMesh, VertexOnlyMesh
    from mpi4py import MPI

    from tests.functionals import N_STEPS, RECEIVERS, point_misfit

    comm = MPI.COMM_WORLD
    owned = len(VertexOnlyMesh(UnitSquareMesh(4, 4, comm=comm), RECEIVERS).coordinates
                .dat.data_ro)
    assert min(comm.allgather(owned)) > 0  # receivers on both ranks
    serial = point_misfit(SingleMemoryStorageSchedule(), comm=MPI.COMM_SELF)
    expected = _by_coordinates(serial.Jhat.derivative())
    expected_tlm = float(serial.Jhat.tlm(serial.direction))
    disk = comm.bcast(str(tmp_path))
    taped = point_misfit(MixedCheckpointSchedule(N_STEPS, 2), disk, comm=comm)
    assert float(taped.Jhat.functional) == pytest.approx(float(serial.Jhat.functional),
                                                         rel=1e-12)
    for _ in range(2):
        got = _by_coordinates(taped.Jhat.derivative())
        assert np.allclose(got[:, :2], expected[:, :2], atol=0, rtol=0)
        error = np.linalg.norm(got[:, 2] - expected[:, 2]) / np.linalg.norm(expected[:, 2])
        assert error <= 1e-10
    assert float(taped.Jhat.tlm(taped.direction)) == pytest.approx(expected_tlm, rel=1e-10)


def _member_misfit(source, comm, schedule):
    from firedrake.adjoint import pause_annotation

    import fe_adjoint
    from demos import fwi
    from tests.helpers import fresh_tape

    s = fwi.survey(cells=6, steps=20, receivers=5, source=source, sources=2, comm=comm)
    data = fwi.records(s, fwi.true_speed(s.V))
    c = fwi.Function(s.V).interpolate(1.5)
    fresh_tape()
    fe_adjoint.enable_checkpointing(schedule, comm=comm)
    J = fwi.misfit(s, c, data, steps=fe_adjoint.steps)
    pause_annotation()
    return J, c


@pytest.mark.parallel(nprocs=2)
def test_an_ensemble_of_sources_matches_the_serial_sum():
    from checkpoint_schedules import Revolve, SingleMemoryStorageSchedule
    from firedrake import Ensemble
    from firedrake.adjoint import Control, EnsembleReducedFunctional, ReducedFunctional
    from mpi4py import MPI

    expected_J, expected = 0.0, 0.0
    for source in (0, 1):  # both members, one after the other, on each rank alone
        J, c = _member_misfit(source, MPI.COMM_SELF, SingleMemoryStorageSchedule())
        Jhat = ReducedFunctional(J, Control(c, riesz_map="l2"))
        expected_J += float(J)
        expected = expected + Jhat.derivative().dat.data_ro
    ensemble = Ensemble(MPI.COMM_WORLD, 1)
    J, c = _member_misfit(ensemble.ensemble_comm.rank, ensemble.comm, Revolve(20, 3))
    Jhat = EnsembleReducedFunctional(J, Control(c, riesz_map="l2"), ensemble)
    assert float(Jhat(c)) == pytest.approx(expected_J, rel=1e-12)
    for _ in range(2):
        got = Jhat.derivative().dat.data_ro
        assert np.linalg.norm(got - expected) <= 1e-10 * np.linalg.norm(expected)
