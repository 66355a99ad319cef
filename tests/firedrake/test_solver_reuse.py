"""Opt-in ``reuse_operators``: taped solves keep their solver's operator when nothing changed.

The script is Firedrake's heat-equation idiom: a LinearVariationalSolver built once, a time
Constant ``t`` advanced after each step and read by the forcing, ``u_old.assign(u)``. With the
opt-in, J and the gradient must equal the run without it to round-off (the same matrix and
factorisation), which is itself checked against central differences of untaped runs.
"""

from __future__ import annotations

import numpy as np
import pytest

import fe_adjoint
from tests.helpers import (
    SCHEDULES,
    Taped,
    as_array,
    burgers,
    fresh_tape,
    pairing,
    perturbed,
    true_derivative_fd,
)

N = 6


def heat(schedule=None, tmp_path=None, control=None, annotate=True, reuse=True,
         new_dt_at=None, untaped_solve_at=None, failed_solve_at=None):
    """Heat with a time-dependent forcing; ``new_dt_at``: the step from which dt is halved;
    ``untaped_solve_at``: before that step, a solve with annotation off at another dt;
    ``failed_solve_at``: that step's solve raises once, and the script solves again."""
    from firedrake import (
        Constant,
        DirichletBC,
        Function,
        FunctionSpace,
        LinearVariationalProblem,
        LinearVariationalSolver,
        SpatialCoordinate,
        TestFunction,
        TrialFunction,
        UnitSquareMesh,
        assemble,
        dx,
        grad,
        inner,
        pi,
        sin,
    )
    from firedrake.adjoint import Control, ReducedFunctional, pause_annotation, stop_annotating

    mesh = UnitSquareMesh(6, 6)
    V = FunctionSpace(mesh, "CG", 1)
    x, y = SpatialCoordinate(mesh)
    m = Function(V).interpolate(sin(pi * x) * sin(pi * y) + x * y)
    if control is not None:
        m.dat.data[:] = control.dat.data_ro
    u_old, u = Function(V), Function(V)
    v, w = TestFunction(V), TrialFunction(V)
    t, dt = Constant(0.0), Constant(0.05)
    solver = LinearVariationalSolver(LinearVariationalProblem(
        (w * v + dt * inner(grad(w), grad(v))) * dx,
        (u_old * v + dt * sin(pi * t) * x * v) * dx, u,
        bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters={"ksp_type": "preonly", "pc_type": "lu"})
    if annotate:
        fresh_tape()
        fe_adjoint.enable_checkpointing(schedule, disk_dir=tmp_path)
        if reuse:
            fe_adjoint.reuse_operators(solver)
    loop = fe_adjoint.steps(N) if annotate else range(N)
    u_old.assign(m)
    J = 0.0
    for n in loop:
        if n == new_dt_at:
            dt.assign(0.025)
        if n == untaped_solve_at:  # a diagnostic solve the tape does not see, at another dt
            with stop_annotating():
                kept = u.copy(deepcopy=True)
                dt.assign(0.2)
                solver.solve()
                dt.assign(0.05)
                u.assign(kept)
        if n == failed_solve_at:
            snes, solver.snes = solver.snes, _FailingSNES(solver.snes)
            with pytest.raises(RuntimeError, match="the solve failed"):
                solver.solve()
            solver.snes = snes
        solver.solve()
        u_old.assign(u)
        t.assign(float(t) + float(dt))
        J += assemble(u_old**2 * dx)
    pause_annotation()
    if not annotate:
        return float(J)
    taped = Taped(ReducedFunctional(J, Control(m)), m, Function(V).interpolate(x * (1 - x)))
    taped.solver = solver
    return taped


def _assert_same_run(taped, J_plain, dJ_plain, variant):
    """J and the gradient of the run without the opt-in at the taping point (then again,
    after a new control), and J of an untaped run at the new control."""
    for value in (taped.m, perturbed(taped.m, taped.direction, 0.5), taped.m):
        J = taped.Jhat(value)
        dJ = as_array(taped.Jhat.derivative())
        if value is taped.m:
            assert abs(J - J_plain) <= 1e-12 * abs(J_plain)
            assert np.linalg.norm(dJ - dJ_plain) <= 1e-12 * np.linalg.norm(dJ_plain)
        else:
            assert abs(J - heat(control=value, annotate=False, **variant)) <= 1e-12 * abs(J)


def _lu_factorisations():
    from firedrake.petsc import PETSc

    return PETSc.Log.Event("MatLUFactorNum").getPerfInfo()["count"]


@pytest.mark.parametrize("schedule, variant, assembled", [
    *((schedule, variant, assembled) for schedule in ("single_memory", "revolve", "mixed_disk")
      for variant, assembled in (({}, 1), ({"new_dt_at": 3}, 2))),
    # The untaped solve's u is put back by value: checkable while its taped value is held.
    ("single_memory", {"untaped_solve_at": 3}, 2)])
def test_reused_operators_give_the_same_run(schedule, variant, assembled, tmp_path):
    from firedrake.petsc import PETSc

    PETSc.Log.begin()
    plain = heat(SCHEDULES[schedule](N), tmp_path, reuse=False, **variant)
    J_plain, dJ_plain = float(plain.Jhat.functional), as_array(plain.Jhat.derivative()).copy()
    before = _lu_factorisations()
    taped = heat(SCHEDULES[schedule](N), tmp_path, **variant)
    # Taping factorised once per distinct operator (the untaped solve its own, and the
    # one after it again, since it moved the matrix).
    untaped = "untaped_solve_at" in variant
    assert _lu_factorisations() - before == assembled + untaped
    assert fe_adjoint.stats()["taped_solves"] == {"kept": N - assembled, "assembled": assembled}
    assert taped.solver._problem._constant_jacobian is False  # the problem's own, back
    assert abs(float(taped.Jhat.functional) - J_plain) <= 1e-12 * abs(J_plain)
    _assert_same_run(taped, J_plain, dJ_plain, variant)
    exact = pairing(dJ_plain, taped.direction)
    fd = true_derivative_fd(lambda **kw: heat(**kw, **variant), taped.m, taped.direction)
    assert abs(fd - exact) <= 1e-6 * abs(exact)


def test_a_reused_run_passes_the_taylor_test(tmp_path):
    from firedrake.adjoint import taylor_test

    taped = heat(SCHEDULES["revolve"](N), tmp_path, new_dt_at=3)
    assert taylor_test(taped.Jhat, taped.m, taped.direction) >= 1.95
    assert fe_adjoint.stats()["taped_solves"]["kept"] == N - 2


def test_the_users_solver_is_untouched_after_taping(tmp_path):
    # After taping, an untaped solve assembles and factorises as Firedrake always does.
    from firedrake.petsc import PETSc

    PETSc.Log.begin()
    taped = heat(SCHEDULES["single_memory"](N), tmp_path)
    taped.Jhat.derivative()
    before = _lu_factorisations()
    taped.solver.solve(annotate=False)
    assert _lu_factorisations() - before == 1


def test_a_jacobian_that_reads_the_unknown_is_assembled_every_solve(tmp_path):
    # Newton's Jacobian changes with the iterate: the opt-in must leave it alone.
    results = []
    for reuse in (False, True):
        taped = burgers(SCHEDULES["revolve"](N), tmp_path, n_steps=N, reuse=reuse)
        results.append((float(taped.Jhat.functional), as_array(taped.Jhat.derivative()).copy()))
    assert fe_adjoint.stats()["taped_solves"] == {"kept": 0, "assembled": N}
    (J0, dJ0), (J1, dJ1) = results
    assert J1 == J0
    assert np.linalg.norm(dJ1 - dJ0) <= 1e-12 * np.linalg.norm(dJ0)


def test_reuse_operators_takes_solvers_only():
    from firedrake.adjoint import Tape, set_working_tape

    set_working_tape(Tape())
    fe_adjoint.enable_checkpointing(SCHEDULES["revolve"](N))
    with pytest.raises(fe_adjoint.ConfigurationError, match="variational solvers"):
        fe_adjoint.reuse_operators("solver")


class _FailingSNES:
    """A solver's SNES whose next solve raises (a solver failing mid-taping)."""

    def __init__(self, snes):
        self._snes = snes

    def __getattr__(self, name):
        return getattr(self._snes, name)

    def solve(self, *args):
        raise RuntimeError("the solve failed")


@pytest.mark.parametrize("schedule", ["single_memory", "revolve"])
@pytest.mark.parametrize("reuse", [False, True])
def test_a_solve_that_raised_and_ran_again_is_not_part_of_the_run(schedule, reuse, tmp_path):
    # Step 3's first solve raises (with reuse: a kept solve, Firedrake's constant_jacobian
    # set for it); the script solves again. The failed solve's block, left without an
    # output, is no operation of the run; with reuse, the problem's own setting is back for
    # the solve again, which assembles (the failed one's matrix state was never noted).
    from firedrake.petsc import PETSc

    PETSc.Log.begin()
    plain = heat(SCHEDULES[schedule](N), tmp_path, reuse=False)
    J_plain, dJ_plain = float(plain.Jhat.functional), as_array(plain.Jhat.derivative()).copy()
    before = _lu_factorisations()
    taped = heat(SCHEDULES[schedule](N), tmp_path, reuse=reuse, failed_solve_at=3)
    if reuse:
        assert _lu_factorisations() - before == 2  # the first solve, and the one after failing
        assert fe_adjoint.stats()["taped_solves"] == {"kept": N - 1, "assembled": 2}
    assert taped.solver._problem._constant_jacobian is False
    _assert_same_run(taped, J_plain, dJ_plain, {})
