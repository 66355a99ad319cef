"""Time functionals, each written twice over the same run: with fe_adjoint.functionals, and
by hand the way users write them today (``J += ...`` per step, the FWI demo's receivers).

Every problem has the signature of :mod:`tests.helpers`' problems; ``by_hand=True`` gives
the hand-written functional. The run: a non-linear reaction-diffusion equation, P1 on a
4 x 4 mesh, whose control is the initial condition; its state peaks at the third step, so
the maxima have a unique winner (``tie=True`` makes steps 2 and 3 equal).
"""

from __future__ import annotations

import numpy as np

N_STEPS = 6
RECEIVERS = np.array([(0.2, 0.3), (0.5, 0.5), (0.8, 0.6), (0.35, 0.9)])


def _run(schedule, tmp_path, n_steps, control, annotate, observe, finish_functional,
         comm=None):
    """Tape the run; ``observe(n, u, mesh)`` after each step's solve; returns the Taped."""
    from firedrake import (
        Constant,
        Function,
        FunctionSpace,
        NonlinearVariationalProblem,
        NonlinearVariationalSolver,
        SpatialCoordinate,
        TestFunction,
        UnitSquareMesh,
        dx,
        grad,
        inner,
        sin,
    )

    from tests.helpers import NEWTON, finish, initial, start, steps

    mesh = UnitSquareMesh(4, 4, **({"comm": comm} if comm is not None else {}))
    V = FunctionSpace(mesh, "CG", 1)
    x, y = SpatialCoordinate(mesh)
    m = initial(Function(V).interpolate(0.5 + 0.3 * sin(3 * x) * y), control)
    start(schedule, tmp_path, annotate)
    u_old = Function(V).assign(m)
    u = Function(V).assign(m)
    v = TestFunction(V)
    dt, source = Constant(0.1), Constant(1.0)
    F = ((u - u_old) / dt * v + 0.05 * inner(grad(u), grad(v)) + u**3 * v
         - source * (1 + x) * v) * dx
    solver = NonlinearVariationalSolver(NonlinearVariationalProblem(F, u),
                                        solver_parameters=NEWTON)
    state = {"mesh": mesh, "x": x, "y": y}
    for n in steps(schedule, n_steps, annotate):
        source.assign(2.0 if n < 3 else -2.0)  # rise, then decay: a peak at step 2
        solver.solve()
        u_old.assign(u)
        observe(n, u, state)
    J = finish_functional(state)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * (y + 0.3)), annotate)


def time_sum(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True,
             by_hand=False, weights=(0.5, 1.0, 2.0, 0.25, 1.5, 3.0)):
    from firedrake import assemble, dx

    import fe_adjoint

    def observe(n, u, state):
        form = (u - state["y"]) ** 2 * state["x"] * dx
        if by_hand:
            state["J"] = state.get("J", 0.0) + weights[n] * assemble(form)
            return
        if "J" not in state:
            state["J"] = fe_adjoint.TimeSum(form, weights)
        state["J"].observe()

    return _run(schedule, tmp_path, n_steps, control, annotate, observe,
                lambda state: state["J"] if by_hand else state["J"].value)


def time_integral(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None,
                  annotate=True, by_hand=False):
    """The trapezoid rule over the steps' states (the first and last weigh dt / 2)."""
    from firedrake import assemble, dx

    import fe_adjoint

    dt = 0.1

    def observe(n, u, state):
        form = u**2 * u * dx
        if by_hand:
            w = dt / 2 if n in (0, n_steps - 1) else dt
            state["J"] = state.get("J", 0.0) + w * assemble(form)
            return
        if "J" not in state:
            state["J"] = fe_adjoint.TimeIntegral(form, dt, "trapezoid", n_steps - 1)
        state["J"].observe()

    return _run(schedule, tmp_path, n_steps, control, annotate, observe,
                lambda state: state["J"] if by_hand else state["J"].value)


def _peak(u, state):
    from firedrake import dx

    return u**2 * (1 + state["x"]) * dx


def time_max(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True,
             by_hand=False, winner=2):
    """``max_n j(u_n)``; by hand: the winning step's term (step ``winner``) taped alone."""
    from firedrake import assemble

    import fe_adjoint

    def observe(n, u, state):
        if by_hand:
            if n == winner:
                state["J"] = assemble(_peak(u, state))
            return
        if "J" not in state:
            state["J"] = fe_adjoint.TimeMax(_peak(u, state))
        state["J"].observe()

    return _run(schedule, tmp_path, n_steps, control, annotate, observe,
                lambda state: state["J"] if by_hand else state["J"].value)


def field_max(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True,
              by_hand=False):
    """``J = int P^2 x dx`` of ``P = max_n u_n``; by hand: a taped interpolation of a
    conditional per step, ``P.interpolate(conditional(gt(u, P), u, P))`` (Firedrake cannot
    take its Hessian: "'ZeroBaseForm' object has no attribute 'ufl_shape'")."""
    from firedrake import Function, assemble, conditional, dx, gt

    import fe_adjoint

    def observe(n, u, state):
        if by_hand:
            if "P" not in state:
                state["P"] = Function(u.function_space()).assign(u)
            else:
                P = state["P"]
                P.interpolate(conditional(gt(u, P), u, P))
            return
        if "max" not in state:
            state["max"] = fe_adjoint.FieldMax(u)
        state["max"].observe()
        state["P"] = state["max"].value

    return _run(schedule, tmp_path, n_steps, control, annotate, observe,
                lambda state: assemble(state["P"] ** 2 * state["x"] * dx))


def records(n_steps=N_STEPS, receivers=RECEIVERS):
    """Synthetic sensor records: (steps x receivers)."""
    k = np.arange(n_steps)[:, None]
    return 0.4 + 0.1 * np.sin(k + receivers[:, 0][None, :]) * receivers[:, 1][None, :]


def point_misfit(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True,
                 by_hand=False, observed=(0, 2, 3, 5), receivers=RECEIVERS, comm=None):
    """Receivers on a VertexOnlyMesh, records at some steps, per-receiver weights; by hand,
    as in Firedrake's FWI demo: interpolate onto the receivers, assemble the misfit."""
    from firedrake import (
        Function,
        FunctionSpace,
        VertexOnlyMesh,
        assemble,
        dx,
        inner,
        interpolate,
    )

    import fe_adjoint

    data = records(n_steps, receivers)
    weights = np.linspace(0.5, 2.0, len(receivers))
    rows = list(observed)

    def observe(n, u, state):
        if "vom" not in state:
            state["vom"] = VertexOnlyMesh(state["mesh"], receivers)
        if by_hand:
            if n not in rows:
                return
            V_r = FunctionSpace(state["vom"], "DG", 0)
            V_io = FunctionSpace(state["vom"].input_ordering, "DG", 0)
            d_io, w_io = Function(V_io), Function(V_io)
            d_io.dat.data_wo[:] = data[n][:len(d_io.dat.data_ro)]
            w_io.dat.data_wo[:] = weights[:len(w_io.dat.data_ro)]
            d, w = assemble(interpolate(d_io, V_r)), assemble(interpolate(w_io, V_r))
            misfit = assemble(interpolate(u, V_r)) - d
            state["J"] = state.get("J", 0.0) + 0.5 * assemble(w * inner(misfit, misfit) * dx)
            return
        if "J" not in state:
            state["J"] = fe_adjoint.PointMisfit(u, state["vom"], data[rows], observed=rows,
                                                weights=weights)
        state["J"].observe()

    return _run(schedule, tmp_path, n_steps, control, annotate, observe,
                lambda state: state["J"] if by_hand else state["J"].value, comm)


FUNCTIONALS = {
    "time_sum": time_sum,
    "time_integral": time_integral,
    "time_max": time_max,
    "field_max": field_max,
    "point_misfit": point_misfit,
}


def tie(schedule=None, tmp_path=None, control=None, annotate=True, field=False):
    """Steps 2 and 3 reach the same maximum, 1.5, at the control m = 1 (in R): step 2 as
    ``m + 0.5``, step 3 as ``2 m - 0.5``. The first winner, step 2, gives dJ/dm = 3 for
    ``J = max_n int u_n^2 dx`` (the later one would give 6)."""
    from firedrake import Function, FunctionSpace, UnitSquareMesh, assemble, dx

    import fe_adjoint
    from tests.helpers import finish, initial, start, steps

    mesh = UnitSquareMesh(1, 1)
    R = FunctionSpace(mesh, "R", 0)
    m = initial(Function(R).assign(1.0), control)
    start(schedule, tmp_path, annotate)
    u = Function(R)
    J = fe_adjoint.FieldMax(u) if field else fe_adjoint.TimeMax(u * u * dx)
    for n in steps(schedule, 4, annotate):
        if n == 2:
            u.assign(m + 0.5)
        elif n == 3:
            u.assign(2 * m - 0.5)
        else:
            u.assign(0.1 * (n + 1) * m)
        J.observe()
    value = assemble(J.value * J.value * dx) if field else J.value
    return finish(value, m, Function(R).assign(1.0), annotate)
