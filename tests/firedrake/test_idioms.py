"""Real-script idioms under every schedule: J, derivatives, TLM and Hessian actions.

References are fe_adjoint's store-everything results checked against central finite
differences of untaped runs (second differences of the gradient for Hessians); see
:mod:`tests.idioms` for the problems.
"""

import numpy as np
import pytest
from firedrake.adjoint import (
    Control,
    ReducedFunctional,
    continue_annotation,
    pause_annotation,
    stop_annotating,
    taylor_test,
)

import fe_adjoint
from tests.helpers import SCHEDULES, control_values, heat, relative_error
from tests.idioms import IDIOMS, N_STEPS, STEPS

TOL = 1e-10
TAYLOR_SCHEDULES = ("single_memory", "revolve", "mixed_disk", "multistage_disk")
# The FWI idiom (20 steps, heavy Hessians) under one schedule of each family; the other
# idioms run under all of them.
FWI_SCHEDULES = ("single_memory", "single_disk", "revolve", "disk_revolve",
                 "multistage_disk", "mixed_disk", "two_level_disk")


@pytest.fixture(scope="session")
def idiom_references():
    """idiom_references(name) -> ([(J, dJ)] at the 3 control values, [(tlm, H d)] at 2)."""
    from tests.helpers import reference, second_order_reference

    cache = {}

    def get(name):
        if name not in cache:
            def first_two(taped):
                return control_values(taped)[:2]

            cache[name] = (reference(IDIOMS[name], control_values),
                           second_order_reference(IDIOMS[name], first_two))
        return cache[name]

    return get


def _check_derivative(Jhat, expected):
    for _ in range(2):  # once, then again without a new forward
        assert relative_error(Jhat.derivative(), expected) <= TOL


def _check_second_order(Jhat, direction, expected):
    tlm, hessian = expected
    assert float(Jhat.tlm(direction)) == pytest.approx(tlm, rel=TOL)
    assert relative_error(Jhat.hessian(direction), hessian) <= TOL


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
@pytest.mark.parametrize("idiom", IDIOMS, ids=list(IDIOMS))
def test_idiom_derivatives_match_finite_differences(idiom, schedule, tmp_path,
                                                    idiom_references):
    if idiom == "full_waveform_inversion" and schedule not in FWI_SCHEDULES:
        pytest.skip("the FWI idiom runs under one schedule of each family")
    first, second = idiom_references(idiom)
    n = STEPS.get(idiom, N_STEPS)
    taped = IDIOMS[idiom](SCHEDULES[schedule](n), tmp_path, n_steps=n)
    Jhat, d = taped.Jhat, taped.direction
    values = control_values(taped)
    live_control = taped.m.dat.data_ro.copy()
    assert float(Jhat.functional) == pytest.approx(first[0][0], rel=TOL)
    _check_derivative(Jhat, first[0][1])
    _check_second_order(Jhat, d, second[0])  # at the taping point, no re-evaluation
    for i in (1, 2, 0):  # two new controls, then back
        assert float(Jhat(values[i])) == pytest.approx(first[i][0], rel=TOL)
        _check_derivative(Jhat, first[i][1])
    Jhat(values[1])
    _check_second_order(Jhat, d, second[1])
    if schedule in TAYLOR_SCHEDULES:  # elsewhere the derivative equals these schedules' one
        assert taylor_test(Jhat, values[0], d) >= 1.95
    assert np.array_equal(taped.m.dat.data_ro, live_control)  # no pass wrote the script's m


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
def test_operations_taped_after_the_functional_are_ignored(schedule, tmp_path, references):
    from firedrake import project

    expected = references("heat")
    taped = heat(SCHEDULES[schedule](N_STEPS), tmp_path)
    Jhat, m = taped.Jhat, taped.m
    continue_annotation()  # left on, as Firedrake's demos and tests do
    V = m.function_space()
    J0 = Jhat(project(m, V))  # a projection taped before the first evaluation
    assert float(J0) == pytest.approx(expected[0][0], rel=TOL)
    assert np.allclose(float(Jhat(m) - J0), 0.0)  # AdjFloat arithmetic taped afterwards
    assert relative_error(Jhat.derivative(), expected[0][1]) <= TOL
    later = control_values(taped)[1]
    assert float(Jhat(later)) == pytest.approx(expected[1][0], rel=TOL)
    assert relative_error(Jhat.derivative(), expected[1][1]) <= TOL
    pause_annotation()


def _tape_1d_heat(m, schedule, tmp_path, coefficients=None):
    """Tape a 1D heat run from initial condition ``m`` (an existing Function) on a new tape."""
    from firedrake import (
        Constant,
        Function,
        TestFunction,
        TrialFunction,
        assemble,
        dx,
        grad,
        inner,
        solve,
    )

    from tests.helpers import fresh_tape

    V = m.function_space()
    kappa, c = coefficients or (Constant(1.0), Constant(0.3))
    fresh_tape()
    fe_adjoint.enable_checkpointing(SCHEDULES[schedule](4), disk_dir=tmp_path)
    u_old, u = Function(V).assign(m), Function(V)
    v, w = TestFunction(V), TrialFunction(V)
    J = 0.0
    for _ in fe_adjoint.steps(4):
        solve((w * v + c * kappa * inner(grad(w), grad(v))) * dx == u_old * v * dx, u)
        u_old.assign(u)
        J += assemble(u_old**2 * u_old * dx)
    pause_annotation()
    return ReducedFunctional(J, Control(m))


def _line(n=8):
    from firedrake import Function, FunctionSpace, SpatialCoordinate, UnitIntervalMesh

    mesh = UnitIntervalMesh(n)
    V = FunctionSpace(mesh, "CG", 1)
    (x,) = SpatialCoordinate(mesh)
    return V, x, Function(V).interpolate(1 + x * (1 - x)), Function(V).interpolate(x * x)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
def test_a_second_tape_over_the_same_control(schedule, tmp_path):
    V, x, m, d = _line()
    alone = _tape_1d_heat(m, schedule, tmp_path)
    dJ, tlm = alone.derivative().dat.data_ro.copy(), float(alone.tlm(d))
    first = _tape_1d_heat(m, schedule, tmp_path)
    first(m.copy(deepcopy=True).assign(2.0))  # the shared BlockVariable now holds another value
    second = _tape_1d_heat(m, schedule, tmp_path)  # the same object, taped at its own value
    assert np.allclose(second.derivative().dat.data_ro, dJ, rtol=1e-12, atol=0)
    assert float(second.tlm(d)) == pytest.approx(tlm, rel=1e-12)
    assert float(second(m)) == pytest.approx(float(alone.functional), rel=1e-12)


def test_values_changed_behind_the_tape_are_not_read(tmp_path):
    from firedrake import Constant, Function

    V, x, m, _ = _line()
    kappa, c = Function(V).interpolate(1 + x), Constant(0.3)  # set up before taping
    Jhat = _tape_1d_heat(m, "revolve", tmp_path, (kappa, c))
    taped_J, taped_dJ = float(Jhat.functional), Jhat.derivative().dat.data_ro.copy()
    with stop_annotating():  # changed after taping, outside the tape
        kappa.assign(5.0)
        c.assign(-2.0)
    assert float(Jhat(m)) == pytest.approx(taped_J, rel=1e-12)
    assert np.allclose(Jhat.derivative().dat.data_ro, taped_dJ, rtol=1e-12, atol=0)
    assert float(c) == -2.0 and kappa.dat.data_ro[0] == 5.0  # the script's values are kept


@pytest.mark.parametrize("schedule", ["revolve", "mixed_disk"])
def test_a_mesh_moved_after_taping_is_not_read(schedule, tmp_path, references):
    """Replays read the taped coordinates (in place while the mesh holds them) and leave
    the script's moved mesh as it was."""
    expected = references("heat")
    taped = heat(SCHEDULES[schedule](N_STEPS), tmp_path)
    assert relative_error(taped.Jhat.derivative(), expected[0][1]) <= TOL
    coordinates = taped.m.function_space().mesh().coordinates
    with stop_annotating():
        coordinates.dat.data[:] *= 1.5
    moved = coordinates.dat.data_ro.copy()
    for i, value in enumerate(control_values(taped)[:2]):
        assert float(taped.Jhat(value)) == pytest.approx(expected[i][0], rel=TOL)
        assert relative_error(taped.Jhat.derivative(), expected[i][1]) <= TOL
        assert np.array_equal(coordinates.dat.data_ro, moved)
    with stop_annotating():
        coordinates.dat.data[:] /= 1.5
    assert relative_error(taped.Jhat.derivative(), expected[1][1]) <= TOL


def test_a_state_changed_outside_the_tape_is_refused_at_taping(tmp_path):
    from firedrake import Function, FunctionSpace, UnitIntervalMesh, assemble, dx

    from tests.helpers import fresh_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(SCHEDULES["revolve"](2), disk_dir=tmp_path)
    V = FunctionSpace(UnitIntervalMesh(4), "CG", 1)
    u = Function(V).assign(1.0)
    J = 0.0
    with pytest.raises(fe_adjoint.ConfigurationError, match="changed outside the tape"):
        for _ in fe_adjoint.steps(2):
            u.assign(2 * u)
            u.dat.data[:] += 1.0  # not taped: a replay could not reproduce it
            J += assemble(u * dx)
    pause_annotation()


def test_a_copy_changed_outside_the_tape_is_refused_at_taping(tmp_path):
    """A copy's value is saved once the copy is taped, not eagerly: a change made to it
    outside the tape before anything reads it must still be refused, not saved."""
    from firedrake import Function, FunctionSpace, UnitIntervalMesh, assemble, dx

    from tests.helpers import fresh_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(SCHEDULES["revolve"](2), disk_dir=tmp_path)
    u = Function(FunctionSpace(UnitIntervalMesh(4), "CG", 1)).assign(1.0)
    J = 0.0
    with pytest.raises(fe_adjoint.ConfigurationError, match="changed outside the tape"):
        for _ in fe_adjoint.steps(2):
            w = u.copy(deepcopy=True)
            w.dat.data[:] += 1.0  # not taped
            J += assemble(w * w * dx)
    pause_annotation()


@pytest.mark.parametrize("schedule", ["single_memory", "revolve"])
def test_a_copy_changed_by_a_taped_operation_keeps_its_taped_value(schedule, tmp_path):
    """``w = u.copy(deepcopy=True); w.interpolate(w + w * u)``: Firedrake tapes the
    interpolation after it ran, and its adjoint reads the copy's value from before."""
    from firedrake import Function, FunctionSpace, UnitIntervalMesh, assemble, dx

    from tests.helpers import fresh_tape

    def expected(m):  # u <- u + u**2 on a constant field; J = sum of the u**2; dJ/dm
        u, du, J, dJ = m, 1.0, 0.0, 0.0
        for _ in range(3):
            u, du = u + u * u, du * (1 + 2 * u)
            J, dJ = J + u * u, dJ + 2 * u * du
        return J, dJ

    fresh_tape()
    fe_adjoint.enable_checkpointing(SCHEDULES[schedule](3), disk_dir=tmp_path)
    m = Function(FunctionSpace(UnitIntervalMesh(4), "CG", 1)).assign(1.0)
    u = m.copy(deepcopy=True)
    J = 0.0
    for _ in fe_adjoint.steps(3):
        w = u.copy(deepcopy=True)
        w.interpolate(w + w * u)
        J += assemble(w * w * dx)
        u.assign(w)
    pause_annotation()
    Jhat = ReducedFunctional(J, Control(m))
    for value in (1.0, 0.5, 1.0):
        if value != 1.0 or float(J) != expected(1.0)[0]:
            J = Jhat(Function(m.function_space()).assign(value))
        assert float(J) == pytest.approx(expected(value)[0], rel=1e-12)
        dJ = Jhat.derivative().dat.data_ro.sum()  # along the constant 1
        assert dJ == pytest.approx(expected(value)[1], rel=1e-12)


def test_taped_forms_hold_no_assembler(tmp_path):
    """Each step's assembly leaves its form on the tape without Firedrake's cached
    assembler (~100 KB a step no replay uses), also where the script re-uses its form."""
    from firedrake import Function, FunctionSpace, UnitIntervalMesh, assemble, dx
    from firedrake.adjoint_utils.blocks.assembly import AssembleBlock

    from tests.helpers import fresh_tape

    fresh_tape()
    session = fe_adjoint.enable_checkpointing(SCHEDULES["single_memory"](3), disk_dir=tmp_path)
    m = Function(FunctionSpace(UnitIntervalMesh(4), "CG", 1)).assign(1.0)
    u = m.copy(deepcopy=True)
    reused = u * u * dx
    J = 0.0
    for _ in fe_adjoint.steps(3):
        u.assign(2 * u)
        J += assemble(u**3 * dx) + assemble(reused)
    pause_annotation()
    dJ = ReducedFunctional(J, Control(m)).derivative()  # ends taping: every step indexed
    assert float(J) == pytest.approx(sum(8**k + 4**k for k in (1, 2, 3)), rel=1e-12)
    assert dJ.dat.data_ro.sum() == pytest.approx(sum(3 * 8**k + 2 * 4**k for k in (1, 2, 3)))
    forms = [block.form for step in session.model.blocks for block in step
             if isinstance(block, AssembleBlock)]
    assert len(forms) == 6 and not any(form._cache for form in forms)


def test_hessian_trace_on_a_plain_tape(tmp_path):
    from firedrake.adjoint import Tape, set_working_tape

    from tests.helpers import burgers

    checkpointed = burgers(SCHEDULES["single_memory"](6), tmp_path)
    expected = fe_adjoint.hessian_trace(checkpointed.Jhat, [checkpointed.direction])
    assert abs(expected) > 1e-6
    set_working_tape(Tape())
    plain = burgers(None)
    assert fe_adjoint.hessian_trace(plain.Jhat, [plain.direction]) == \
        pytest.approx(expected, rel=1e-10)


def test_plain_firedrake_adjoint_is_wrong_where_the_reference_is_not(idiom_references):
    """Why no reference comes from plain firedrake.adjoint: its first gradient reads the
    final value of the time Constant in the adjoint's forms."""
    (_, dJ), *_ = idiom_references("time_after_step")[0]
    plain = IDIOMS["time_after_step"](None)
    assert relative_error(plain.Jhat.derivative(), dJ) > 1e-2


@pytest.mark.parametrize("form", ["solver", "solve"])
def test_replays_with_an_iterative_solver_repeat_the_taped_run_exactly(form, tmp_path):
    """The solver's initial guess is read as taped: the replay repeats its rounding."""
    from firedrake import (
        DirichletBC,
        Function,
        LinearVariationalProblem,
        LinearVariationalSolver,
        TestFunction,
        TrialFunction,
        assemble,
        dx,
        grad,
        inner,
        solve,
    )

    from tests.helpers import fresh_tape

    cg = {"ksp_type": "cg", "pc_type": "jacobi", "ksp_rtol": 1e-6}
    V, x, m, _ = _line(32)
    results = []
    for schedule in ("single_memory", "revolve"):
        fresh_tape()
        fe_adjoint.enable_checkpointing(SCHEDULES[schedule](6), disk_dir=tmp_path)
        u_old, u = Function(V).assign(m), Function(V)
        v, w = TestFunction(V), TrialFunction(V)
        a, L = (w * v + 0.05 * inner(grad(w), grad(v))) * dx, u_old * v * dx
        bc = DirichletBC(V, 0, "on_boundary")
        solver = LinearVariationalSolver(LinearVariationalProblem(a, L, u, bcs=bc),
                                         solver_parameters=cg)
        J = 0.0
        for _ in fe_adjoint.steps(6):
            solver.solve() if form == "solver" else solve(a == L, u, bcs=bc,
                                                          solver_parameters=cg)
            u_old.assign(u)
            J += assemble(u_old**2 * u_old * dx)
        pause_annotation()
        Jhat = ReducedFunctional(J, Control(m))
        results.append(Jhat.derivative().dat.data_ro.copy())  # Revolve: from replays
        assert float(Jhat(m)) == float(J)  # bit for bit
    assert np.array_equal(results[0], results[1])
