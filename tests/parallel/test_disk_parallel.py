"""Under mpiexec -n 2 a disk schedule gives the serial gradient; its per-rank files are removed."""

import os

import pytest


@pytest.fixture
def shared_dir(tmp_path):
    """rank 0's tmp_path, the same directory on every rank."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.bcast(str(tmp_path), root=0)


@pytest.mark.parallel(nprocs=2)
def test_disk_schedule_matches_serial_gradient(shared_dir):
    from checkpoint_schedules import MixedCheckpointSchedule, SingleMemoryStorageSchedule
    from firedrake.adjoint import Tape, get_working_tape, set_working_tape
    from mpi4py import MPI

    import fe_adjoint
    from tests.helpers import N_STEPS, as_array, reaction_diffusion, relative_error

    comm = MPI.COMM_WORLD
    assert comm.size == 2
    serial = reaction_diffusion(SingleMemoryStorageSchedule(), comm=MPI.COMM_SELF)
    expected = as_array(serial.Jhat.derivative()).copy()

    taped = reaction_diffusion(MixedCheckpointSchedule(N_STEPS, 2), shared_dir, comm=comm)
    for _ in range(2):
        assert relative_error(taped.Jhat.derivative(), expected) <= 1e-10
    assert fe_adjoint.stats()["peak_bytes"]["DISK"]["adjoint"] > 0
    get_working_tape().clear_tape()
    set_working_tape(Tape())
    comm.barrier()
    leftovers = [names for _, _, names in os.walk(shared_dir) if names]
    assert leftovers == []


@pytest.mark.parallel(nprocs=2)
def test_hessian_trace_matches_serial(shared_dir):
    from checkpoint_schedules import Revolve, SingleMemoryStorageSchedule
    from mpi4py import MPI

    import fe_adjoint
    from tests.helpers import N_STEPS, reaction_diffusion

    comm = MPI.COMM_WORLD
    serial = reaction_diffusion(SingleMemoryStorageSchedule(), comm=MPI.COMM_SELF)
    d = serial.direction
    expected = fe_adjoint.hessian_trace(serial.Jhat, [d, d])
    expected_estimate = fe_adjoint.hessian_trace(serial.Jhat, samples=4, seed=7)

    taped = reaction_diffusion(Revolve(N_STEPS, 2), shared_dir, comm=comm)
    d = taped.direction
    assert abs(fe_adjoint.hessian_trace(taped.Jhat, [d, d]) - expected) <= 1e-10 * abs(expected)
    estimate = fe_adjoint.hessian_trace(taped.Jhat, samples=4, seed=7)
    # the same seed draws the same global directions on every rank, and as in serial
    assert comm.allgather(estimate.value) == [estimate.value] * comm.size
    assert abs(estimate.value - expected_estimate.value) <= 1e-10 * abs(expected_estimate.value)


@pytest.mark.parallel(nprocs=2)
def test_operations_taped_after_the_functional_on_one_rank_do_not_hang(shared_dir):
    from checkpoint_schedules import (
        MixedCheckpointSchedule,
        SingleMemoryStorageSchedule,
        StorageType,
    )
    from firedrake.adjoint import continue_annotation, pause_annotation
    from mpi4py import MPI

    from tests.helpers import N_STEPS, as_array, reaction_diffusion, relative_error

    comm = MPI.COMM_WORLD
    serial = reaction_diffusion(SingleMemoryStorageSchedule(), comm=MPI.COMM_SELF)
    expected = as_array(serial.Jhat.derivative()).copy()
    taped = reaction_diffusion(
        MixedCheckpointSchedule(N_STEPS, 2, storage=StorageType.DISK), shared_dir, comm=comm)
    continue_annotation()
    if comm.rank == 0:  # e.g. an ensemble's reduction of AdjFloats, taped on one rank
        taped.Jhat.functional * 2.0
    assert relative_error(taped.Jhat.derivative(), expected) <= 1e-10
    assert float(taped.Jhat(taped.m)) == pytest.approx(float(serial.Jhat.functional), rel=1e-12)
    pause_annotation()


@pytest.mark.parallel(nprocs=2)
def test_auto_schedule_plans_alike_on_every_rank(shared_dir):
    from checkpoint_schedules import SingleMemoryStorageSchedule
    from mpi4py import MPI

    import fe_adjoint
    from tests.helpers import N_STEPS, as_array, reaction_diffusion, relative_error

    comm = MPI.COMM_WORLD
    serial = reaction_diffusion(SingleMemoryStorageSchedule(), comm=MPI.COMM_SELF)
    expected = as_array(serial.Jhat.derivative()).copy()
    store_all = N_STEPS * fe_adjoint.stats()["costs"]["adjoint_bytes"]  # the whole mesh's
    budget = {"memory": store_all // 4, "disk": 2 * store_all}
    taped = reaction_diffusion(fe_adjoint.AutoSchedule(N_STEPS, **budget), shared_dir,
                               comm=comm)
    for _ in range(2):
        assert relative_error(taped.Jhat.derivative(), expected) <= 1e-10
    stats = fe_adjoint.stats()
    assert len(set(comm.allgather(stats["schedule"]))) == 1  # the ranks agreed on the costs
    peaks = stats["peak_total_bytes"]
    assert peaks["RAM"] + peaks["WORK"] <= budget["memory"] and peaks["DISK"] <= budget["disk"]
