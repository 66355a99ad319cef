"""Under mpiexec -n 2 the reversible schedule runs split-mesh leapfrog steps backwards."""

import numpy as np
import pytest


@pytest.mark.parallel(nprocs=2)
def test_reversible_schedule_on_a_split_mesh(tmp_path):
    from checkpoint_schedules import SingleMemoryStorageSchedule, StorageType
    from mpi4py import MPI

    import fe_adjoint
    from tests.waves import leapfrog

    n = 200
    disk = MPI.COMM_WORLD.bcast(str(tmp_path))
    expected = _summary(leapfrog(SingleMemoryStorageSchedule(), n_steps=n))
    for storage in (StorageType.RAM, StorageType.DISK):
        taped = leapfrog(fe_adjoint.ReversibleSchedule(n, 20, storage), disk, n_steps=n)
        for _ in range(2):  # meshes made alike may be split differently: global numbers
            assert _summary(taped) == pytest.approx(expected, rel=1e-10)
        info = fe_adjoint.stats()["reversible"]
        assert info["fallback_segments"] == 0 and info["stored_states"] <= n / 20 + 2


@pytest.mark.parallel(nprocs=2)
def test_an_absorbing_boundary_is_side_data_on_a_split_mesh():
    from checkpoint_schedules import SingleMemoryStorageSchedule
    from mpi4py import MPI

    import fe_adjoint
    from demos import fwi
    from tests.firedrake.test_reversible import _fwi_gradients
    from tests.helpers import relative_error

    n = 300
    s = fwi.survey(cells=30, steps=n, receivers=10)
    data = fwi.records(s, fwi.true_speed(s.V))
    expected, _ = _fwi_gradients(s, data, SingleMemoryStorageSchedule(), [1.6])
    gradients, _ = _fwi_gradients(s, data, fe_adjoint.ReversibleSchedule(n, 30), [1.6])
    for gradient, reference in zip(gradients, expected):
        local = relative_error(gradient, reference) ** 2
        assert MPI.COMM_WORLD.allreduce(local) <= 1e-20 * MPI.COMM_WORLD.size
    info = fe_adjoint.stats()["reversible"]
    assert info["fallback_segments"] == 0
    assert MPI.COMM_WORLD.allreduce(info["side_bytes"]) > 0


def _summary(taped):
    """The gradient's global 2-norm and its pairing with the direction: numbers that do not
    depend on how the mesh was split (two meshes made alike may be split differently)."""
    from mpi4py import MPI

    gradient = taped.Jhat.derivative().dat.data_ro
    local = [gradient @ gradient, gradient @ taped.direction.dat.data_ro]
    return MPI.COMM_WORLD.allreduce(np.array(local))


@pytest.mark.parallel(nprocs=2)
@pytest.mark.parametrize("problem", ["declared clamped leapfrog", "velocity Verlet"])
def test_declared_and_derived_inverses_on_a_split_mesh(problem):
    from checkpoint_schedules import SingleMemoryStorageSchedule

    import fe_adjoint
    from tests.waves import leapfrog, verlet

    n = 100
    if problem == "velocity Verlet":
        def run(schedule, **options):
            return verlet(schedule, n_steps=n)
    else:
        def run(schedule, **options):
            return leapfrog(schedule, n_steps=n, clamped=True, **options)
    expected = _summary(run(SingleMemoryStorageSchedule()))
    taped = run(fe_adjoint.ReversibleSchedule(n, 20), declare=True)
    assert _summary(taped) == pytest.approx(expected, rel=1e-10)
    assert fe_adjoint.stats()["reversible"]["fallback_segments"] == 0
