"""reuse_operators on a split mesh: every rank keeps (or assembles) the operator alike."""

import numpy as np
import pytest


@pytest.mark.parallel(nprocs=2)
def test_reused_operators_on_a_split_mesh(tmp_path):
    from mpi4py import MPI

    import fe_adjoint
    from tests.firedrake.test_solver_reuse import N, heat
    from tests.helpers import SCHEDULES, as_array

    runs = []
    for reuse in (False, True):
        taped = heat(SCHEDULES["revolve"](N), None, reuse=reuse, new_dt_at=3)
        runs.append((float(taped.Jhat.functional), as_array(taped.Jhat.derivative()).copy()))
    counts = fe_adjoint.stats()["taped_solves"]
    assert counts == {"kept": N - 2, "assembled": 2}
    assert MPI.COMM_WORLD.allgather(counts) == [counts] * MPI.COMM_WORLD.size
    (J0, dJ0), (J1, dJ1) = runs
    assert abs(J1 - J0) <= 1e-12 * abs(J0)
    assert np.linalg.norm(dJ1 - dJ0) <= 1e-12 * np.linalg.norm(dJ0)
