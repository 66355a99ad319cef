"""Irksome time steppers under fe_adjoint: J, derivatives, TLM and Hessian actions.

Each problem is written as Irksome's demos write it: a semi-discrete form in ``Dt(u)``, a
``TimeStepper(F, butcher_tableau, t, dt, u, bcs=..., solver_parameters=...)``, then
``stepper.advance()`` and ``t.assign(float(t) + float(dt))`` every step. The steppers put
Irksome's own operations on the tape: a stage-coupled mixed solve and the update
``u += dt * sum(b_i k_i)`` (GaussLegendre, RadauIIA), or one solve per stage with the
stage time and the known part of the state re-assigned before each (a DIRK).

References are fe_adjoint's store-everything results checked against central finite
differences of untaped runs (see :func:`tests.helpers.reference`).
"""

import pytest

pytest.importorskip("irksome")  # at collection: Irksome must come before any UFL MultiFunction

from firedrake.adjoint import taylor_test  # noqa: E402

from tests.helpers import (  # noqa: E402
    NEWTON,
    SCHEDULES,
    control_values,
    finish,
    initial,
    relative_error,
    start,
    steps,
)

N_STEPS = 5
TOL = 1e-10
# A stage-coupled method solves a mixed system: assembled as one aij matrix for LU.
SOLVER = {"mat_type": "aij", **NEWTON}


def heat_gauss_legendre(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None,
                        annotate=True):
    """Heat u_t = div(grad u) + f(t), zero Dirichlet boundary, GaussLegendre(2) (stage
    derivatives); control: the initial condition."""
    from firedrake import (
        Constant,
        DirichletBC,
        Function,
        FunctionSpace,
        SpatialCoordinate,
        TestFunction,
        UnitSquareMesh,
        assemble,
        dx,
        grad,
        inner,
        pi,
        sin,
    )
    from irksome import Dt, GaussLegendre, TimeStepper

    mesh = UnitSquareMesh(4, 4)
    V = FunctionSpace(mesh, "CG", 1)
    x, y = SpatialCoordinate(mesh)
    m = initial(Function(V).interpolate(sin(pi * x) * sin(pi * y) + x * y), control)
    start(schedule, tmp_path, annotate)
    t, dt = Constant(0.0), Constant(0.05)
    u = Function(V).assign(m)
    v = TestFunction(V)
    f = (1 + sin(3 * t)) * x * (1 - x) * y
    F = inner(Dt(u), v) * dx + inner(grad(u), grad(v)) * dx - inner(f, v) * dx
    bc = DirichletBC(V, 0, "on_boundary")
    stepper = TimeStepper(F, GaussLegendre(2), t, dt, u, bcs=bc, solver_parameters=SOLVER)
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        stepper.advance()
        t.assign(float(t) + float(dt))
        J += assemble(u**2 * dx)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * y), annotate)


def heat_dirk(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True):
    """Heat u_t = div(kappa grad u) + f(t), zero Dirichlet boundary, Alexander's 3-stage
    DIRK (``stage_type="dirk"``); control: the diffusivity kappa, an R-space Function."""
    from firedrake import (
        Constant,
        DirichletBC,
        Function,
        FunctionSpace,
        SpatialCoordinate,
        TestFunction,
        UnitSquareMesh,
        assemble,
        cos,
        dx,
        grad,
        inner,
        pi,
        sin,
    )
    from irksome import Alexander, Dt, TimeStepper

    mesh = UnitSquareMesh(4, 4)
    V, R = FunctionSpace(mesh, "CG", 1), FunctionSpace(mesh, "R", 0)
    x, y = SpatialCoordinate(mesh)
    kappa = initial(Function(R).assign(1.0), control)
    start(schedule, tmp_path, annotate)
    t, dt = Constant(0.0), Constant(0.05)
    u = Function(V).interpolate(sin(pi * x) * sin(pi * y))
    v = TestFunction(V)
    f = cos(2 * t) * x * y
    F = inner(Dt(u), v) * dx + kappa * inner(grad(u), grad(v)) * dx - inner(f, v) * dx
    bc = DirichletBC(V, 0, "on_boundary")
    stepper = TimeStepper(F, Alexander(), t, dt, u, bcs=bc, solver_parameters=NEWTON,
                          stage_type="dirk")
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        stepper.advance()
        t.assign(float(t) + float(dt))
        J += assemble(u**2 * dx)
    return finish(J, kappa, Function(R).assign(1.0), annotate)


def reaction_diffusion_radau(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None,
                             annotate=True):
    """Non-linear u_t = 0.1 div(grad u) - u^3 + f(t), natural boundary, RadauIIA(2)
    (stage derivatives); control: the initial condition."""
    from firedrake import (
        Constant,
        Function,
        FunctionSpace,
        SpatialCoordinate,
        TestFunction,
        UnitSquareMesh,
        assemble,
        dx,
        grad,
        inner,
        pi,
        sin,
    )
    from irksome import Dt, RadauIIA, TimeStepper

    mesh = UnitSquareMesh(4, 4)
    V = FunctionSpace(mesh, "CG", 1)
    x, y = SpatialCoordinate(mesh)
    m = initial(Function(V).interpolate(1 + 0.5 * sin(pi * x) * sin(pi * y)), control)
    start(schedule, tmp_path, annotate)
    t, dt = Constant(0.0), Constant(0.1)
    u = Function(V).assign(m)
    v = TestFunction(V)
    f = (1 + sin(3 * t)) * x * y
    F = (inner(Dt(u), v) * dx + 0.1 * inner(grad(u), grad(v)) * dx + inner(u**3, v) * dx
         - inner(f, v) * dx)
    stepper = TimeStepper(F, RadauIIA(2), t, dt, u, solver_parameters=SOLVER)
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        stepper.advance()
        t.assign(float(t) + float(dt))
        J += assemble(u**2 * dx)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * y), annotate)


PROBLEMS = {
    "heat_gauss_legendre": heat_gauss_legendre,
    "heat_dirk": heat_dirk,
    "reaction_diffusion_radau": reaction_diffusion_radau,
}
SCHEDULE_NAMES = ["revolve", "mixed_ram", "single_memory"]


@pytest.fixture(scope="session")
def irksome_references():
    """irksome_references(name) -> ([(J, dJ)] at the 3 control values, [(tlm, H d)] at the
    first 2), each computed once per session."""
    from tests.helpers import reference, second_order_reference

    cache = {}

    def get(name):
        if name not in cache:
            def first_two(taped):
                return control_values(taped)[:2]

            cache[name] = (reference(PROBLEMS[name], control_values),
                           second_order_reference(PROBLEMS[name], first_two))
        return cache[name]

    return get


def _tape(problem, schedule, tmp_path):
    return PROBLEMS[problem](SCHEDULES[schedule](N_STEPS), tmp_path)


def _check_derivative(Jhat, expected):
    for _ in range(2):  # once, then again without a new forward
        assert relative_error(Jhat.derivative(), expected) <= TOL


def _check_second_order(Jhat, direction, expected):
    tlm, hessian = expected
    assert relative_error(float(Jhat.tlm(direction)), tlm) <= TOL
    assert relative_error(Jhat.hessian(direction), hessian) <= TOL


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_functional_and_derivative(problem, schedule, tmp_path, irksome_references):
    first, _ = irksome_references(problem)
    taped = _tape(problem, schedule, tmp_path)
    Jhat, values = taped.Jhat, control_values(taped)
    assert relative_error(float(Jhat.functional), first[0][0]) <= TOL  # right after taping
    _check_derivative(Jhat, first[0][1])
    for i in (1, 2, 0):  # two new controls, then back
        assert relative_error(float(Jhat(values[i])), first[i][0]) <= TOL
        _check_derivative(Jhat, first[i][1])


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_tlm_and_hessian(problem, schedule, tmp_path, irksome_references):
    _, second = irksome_references(problem)
    taped = _tape(problem, schedule, tmp_path)
    Jhat, d, values = taped.Jhat, taped.direction, control_values(taped)
    _check_second_order(Jhat, d, second[0])  # at the taping point, no re-evaluation
    Jhat(values[1])
    _check_second_order(Jhat, d, second[1])


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_taylor(problem, schedule, tmp_path):
    taped = _tape(problem, schedule, tmp_path)
    assert taylor_test(taped.Jhat, control_values(taped)[0], taped.direction) >= 1.95
