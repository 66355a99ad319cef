"""Under mpiexec -n 2 the reversible schedule runs split-mesh leapfrog steps backwards."""

import pytest


@pytest.mark.parallel(nprocs=2)
def test_reversible_schedule_on_a_split_mesh(tmp_path):
    from checkpoint_schedules import SingleMemoryStorageSchedule, StorageType
    from mpi4py import MPI

    import fe_adjoint
    from tests.helpers import relative_error
    from tests.waves import leapfrog

    n = 200
    disk = MPI.COMM_WORLD.bcast(str(tmp_path))
    expected = leapfrog(SingleMemoryStorageSchedule(), n_steps=n).Jhat.derivative()
    expected = expected.dat.data_ro.copy()
    for storage in (StorageType.RAM, StorageType.DISK):
        taped = leapfrog(fe_adjoint.ReversibleSchedule(n, 20, storage), disk, n_steps=n)
        for _ in range(2):
            local = relative_error(taped.Jhat.derivative(), expected) ** 2
            assert MPI.COMM_WORLD.allreduce(local) <= 1e-20 * MPI.COMM_WORLD.size
        info = fe_adjoint.stats()["reversible"]
        assert info["fallback_segments"] == 0 and info["stored_states"] <= n / 20 + 2
