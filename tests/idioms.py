"""Test problems written the way Firedrake users write them, each on an idiom that broke us.

Each problem is called like those of :mod:`tests.helpers` (``schedule``, ``tmp_path``,
``n_steps``, ``control``, ``annotate``) and returns a ``Taped`` problem, or J as a float
for an untaped run. Untaped runs at perturbed controls give the finite-difference
references; nothing here trusts a replay.

1. controls made by taped operations (``interpolate``, ``project``, ``assign``);
2. a DirichletBC whose value is a Function re-assigned every step (taped, or outside
   the tape);
4. a forcing Cofunction re-assigned every step (Firedrake's full-waveform-inversion demo);
5. a time Constant advanced after the step (Irksome), in a source multiplying the control;
6. a copy made at the start of each step, the state then updated in place (G-ADOPT);

and Firedrake's full-waveform-inversion demo as written (VertexOnlyMesh receivers, a
matrix-free solve, a Cofunction point source).
"""

from __future__ import annotations

from tests.helpers import NEWTON, finish, start, steps

N_STEPS = 6


def _heat_space():
    from firedrake import FunctionSpace, SpatialCoordinate, UnitSquareMesh

    mesh = UnitSquareMesh(5, 5)
    return FunctionSpace(mesh, "CG", 1), SpatialCoordinate(mesh)


def _set(m, control):
    """Give the control the values of ``control`` (from another run's mesh) by a taped assign."""
    from firedrake import Function
    from firedrake.adjoint import stop_annotating

    if control is not None:
        with stop_annotating():
            value = Function(m.function_space())
            value.dat.data[:] = control.dat.data_ro
        m.assign(value)
    return m


def taped_control(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True,
                  make="interpolate"):
    """Heat; the initial condition, the control, made while annotating by ``make``."""
    from firedrake import (
        Constant,
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
        pi,
        project,
        sin,
    )

    V, (x, y) = _heat_space()
    start(schedule, tmp_path, annotate)
    expr = sin(pi * x) * sin(pi * y) + x * y
    if make == "interpolate":
        m = Function(V).interpolate(expr)
    elif make == "project":
        m = project(expr, V)
    else:
        m = Function(V).assign(1.0)
    m = _set(m, control)
    u_old, u = Function(V).assign(m), Function(V)
    v, w = TestFunction(V), TrialFunction(V)
    dt = Constant(0.05)
    solver = LinearVariationalSolver(
        LinearVariationalProblem((w * v + dt * inner(grad(w), grad(v))) * dx,
                                 (u_old * v + dt * x * v) * dx, u,
                                 bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters={"ksp_type": "preonly", "pc_type": "lu"})
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * dx)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * y), annotate)


def r_control_taped(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None,
                    annotate=True):
    """Non-linear reaction-diffusion; an R-space control made by ``Function(R).assign(0.7)``."""
    from firedrake import (
        Constant,
        Function,
        FunctionSpace,
        NonlinearVariationalProblem,
        NonlinearVariationalSolver,
        SpatialCoordinate,
        TestFunction,
        UnitSquareMesh,
        assemble,
        dx,
        grad,
        inner,
    )

    mesh = UnitSquareMesh(4, 4)
    V, R = FunctionSpace(mesh, "CG", 1), FunctionSpace(mesh, "R", 0)
    x, y = SpatialCoordinate(mesh)
    start(schedule, tmp_path, annotate)
    m = _set(Function(R).assign(0.7), control)
    u_old, u, v = Function(V), Function(V), TestFunction(V)
    dt = Constant(0.1)
    F = ((u - u_old) / dt * v + 0.1 * inner(grad(u), grad(v)) + u**3 * v - m * x * y * v) * dx
    solver = NonlinearVariationalSolver(NonlinearVariationalProblem(F, u), solver_parameters=NEWTON)
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * dx)
    return finish(J, m, Function(R).assign(1.0), annotate)


def function_bc(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True,
                taped_bc=True):
    """Heat with a time-dependent boundary value ``g``, a Function re-assigned every step.

    ``taped_bc=False`` re-assigns it outside the tape (under ``stop_annotating``).
    """
    from firedrake import (
        Constant,
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
        pi,
        sin,
    )
    from firedrake.adjoint import stop_annotating

    from tests.helpers import initial

    V, (x, y) = _heat_space()
    m = initial(Function(V).interpolate(sin(pi * x) * sin(pi * y)), control)
    start(schedule, tmp_path, annotate)
    g = Function(V)
    u_old, u = Function(V).assign(m), Function(V)
    v, w = TestFunction(V), TrialFunction(V)
    dt = 0.05
    solver = LinearVariationalSolver(
        LinearVariationalProblem((w * v + dt * inner(grad(w), grad(v))) * dx, u_old * v * dx,
                                 u, bcs=DirichletBC(V, g, "on_boundary")),
        solver_parameters={"ksp_type": "preonly", "pc_type": "lu"})
    J = 0.0
    for n in steps(schedule, n_steps, annotate):
        if taped_bc:
            g.interpolate(Constant((n + 1) * dt) * (1 + x * y))
        else:
            with stop_annotating():
                g.interpolate(Constant((n + 1) * dt) * (1 + x * y))
        solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * u_old * dx)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * y), annotate)


def cofunction_forcing(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None,
                       annotate=True):
    """Heat forced by a Cofunction ``f`` in ``rhs(F) + f``, ``f.assign(r(t_n) * q)`` each step."""
    from firedrake import (
        Cofunction,
        Constant,
        DirichletBC,
        Function,
        LinearVariationalProblem,
        LinearVariationalSolver,
        TestFunction,
        TrialFunction,
        assemble,
        dx,
        exp,
        grad,
        inner,
        lhs,
        pi,
        rhs,
        sin,
    )

    from tests.helpers import initial

    V, (x, y) = _heat_space()
    m = initial(Function(V).interpolate(sin(pi * x) * sin(pi * y)), control)
    start(schedule, tmp_path, annotate)
    v, u_ = TestFunction(V), TrialFunction(V)
    q = assemble(exp(-20 * ((x - 0.4) ** 2 + (y - 0.6) ** 2)) * v * dx)
    f = Cofunction(V.dual())
    u_old, u = Function(V).assign(m), Function(V)
    dt = Constant(0.05)
    F = (u_ - u_old) * v * dx + dt * inner(grad(u_), grad(v)) * dx
    solver = LinearVariationalSolver(
        LinearVariationalProblem(lhs(F), rhs(F) + f, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters={"ksp_type": "preonly", "pc_type": "lu"})
    J = 0.0
    for n in steps(schedule, n_steps, annotate):
        f.assign(float(sin(3.0 * (n + 1) * 0.05)) * q)
        solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * dx)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * y), annotate)


def time_after_step(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None,
                    annotate=True):
    """Reaction-diffusion with ``t.assign(float(t) + float(dt))`` after each solve (Irksome).

    The source ``(1 + sin(3t)) * sum_k m_k phi_k`` puts ``t`` into the adjoint's forms.
    """
    from firedrake import (
        Constant,
        Function,
        FunctionSpace,
        NonlinearVariationalProblem,
        NonlinearVariationalSolver,
        SpatialCoordinate,
        TestFunction,
        UnitSquareMesh,
        assemble,
        dx,
        grad,
        inner,
        sin,
    )

    from tests.helpers import initial

    mesh = UnitSquareMesh(4, 4)
    V, R = FunctionSpace(mesh, "CG", 1), FunctionSpace(mesh, "R", 0)
    x, y = SpatialCoordinate(mesh)
    m = initial(Function(R).assign(1.5), control)
    start(schedule, tmp_path, annotate)
    t, dt = Constant(0.0), Constant(0.1)
    u_old, u, v = Function(V), Function(V), TestFunction(V)
    source = (1 + sin(3 * t)) * m * x * y
    F = ((u - u_old) / dt * v + 0.1 * inner(grad(u), grad(v)) + u**3 * v - source * v) * dx
    solver = NonlinearVariationalSolver(NonlinearVariationalProblem(F, u), solver_parameters=NEWTON)
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        solver.solve()
        J += assemble(u**2 * dx)
        u_old.assign(u)
        t.assign(float(t) + float(dt))
    return finish(J, m, Function(R).assign(1.0), annotate)


def copy_first(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True):
    """Burgers stepped as G-ADOPT's energy solver: ``u_old.assign(u)`` first, then ``u`` solved."""
    from firedrake import (
        Constant,
        DirichletBC,
        Function,
        FunctionSpace,
        NonlinearVariationalProblem,
        NonlinearVariationalSolver,
        SpatialCoordinate,
        TestFunction,
        UnitIntervalMesh,
        assemble,
        dx,
        pi,
        sin,
    )

    from tests.helpers import initial

    mesh = UnitIntervalMesh(16)
    V = FunctionSpace(mesh, "CG", 2)
    (x,) = SpatialCoordinate(mesh)
    m = initial(Function(V).interpolate(sin(2 * pi * x)), control)
    start(schedule, tmp_path, annotate)
    u, u_old, v = Function(V).assign(m), Function(V), TestFunction(V)
    nu, dt = Constant(0.01), Constant(0.05)
    F = ((u - u_old) / dt * v + u * u.dx(0) * v + nu * u.dx(0) * v.dx(0)) * dx
    solver = NonlinearVariationalSolver(
        NonlinearVariationalProblem(F, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters=NEWTON)
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        u_old.assign(u)
        solver.solve()
        J += assemble(u**2 * u_old * dx)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * (x + 0.3)), annotate)


def full_waveform_inversion(schedule=None, tmp_path=None, n_steps=20, control=None,
                            annotate=True):
    """Firedrake's full-waveform-inversion demo (one source), its code kept as written.

    KMV elements with a lumped mass matrix, a matrix-free Jacobi solve, a Ricker-wavelet
    point source as a Cofunction re-assigned every step, receivers on a VertexOnlyMesh
    and a misfit summed over the steps; the control is the wave speed ``c_guess``.
    """
    import finat
    import numpy as np
    from firedrake import (
        Cofunction,
        Constant,
        Function,
        FunctionSpace,
        LinearVariationalProblem,
        LinearVariationalSolver,
        SpatialCoordinate,
        TestFunction,
        TrialFunction,
        UnitSquareMesh,
        VertexOnlyMesh,
        assemble,
        dot,
        ds,
        dx,
        grad,
        inner,
        interpolate,
        lhs,
        rhs,
        sqrt,
        tanh,
    )
    from firedrake.adjoint import stop_annotating

    from tests.helpers import initial

    dt, frequency_peak = 0.03, 7.0
    mesh = UnitSquareMesh(6, 6)
    source_locations = np.array([(0.5, 0.1)])
    receiver_locations = np.linspace((0.2, 0.9), (0.8, 0.9), 5)
    V = FunctionSpace(mesh, "KMV", 1)
    x, z = SpatialCoordinate(mesh)

    def ricker_wavelet(t, fs, amp=1.0):
        ts = 1.5
        t0 = t - ts * np.sqrt(6.0) / (np.pi * fs)
        return (amp * (1.0 - (1.0 / 2.0) * (2.0 * np.pi * fs) * (2.0 * np.pi * fs) * t0 * t0)
                * np.exp((-1.0 / 4.0) * (2.0 * np.pi * fs) * (2.0 * np.pi * fs) * t0 * t0))

    source_mesh = VertexOnlyMesh(mesh, [source_locations[0]])
    V_s = FunctionSpace(source_mesh, "DG", 0)
    d_s = Function(V_s)
    d_s.interpolate(1.0)
    source_cofunction = assemble(d_s * TestFunction(V_s) * dx)
    q_s = Cofunction(V.dual()).interpolate(source_cofunction)

    def wave_equation_solver(c, source_function, dt, V):
        u = TrialFunction(V)
        v = TestFunction(V)
        u_np1, u_n, u_nm1 = Function(V), Function(V), Function(V)
        quad_rule = finat.quadrature.make_quadrature(V.finat_element.cell,
                                                     V.ufl_element().degree(), "KMV")
        m = (1 / (c * c))
        time_term = m * (u - 2.0 * u_n + u_nm1) / Constant(dt**2) * v * dx(scheme=quad_rule)
        nf = (1 / c) * ((u_n - u_nm1) / dt) * v * ds
        a = dot(grad(u_n), grad(v)) * dx(scheme=quad_rule)
        F = time_term + a + nf
        lin_var = LinearVariationalProblem(lhs(F), rhs(F) + source_function, u_np1)
        solver_parameters = {"mat_type": "matfree", "ksp_type": "preonly", "pc_type": "jacobi"}
        solver = LinearVariationalSolver(lin_var, solver_parameters=solver_parameters)
        return solver, u_np1, u_n, u_nm1

    receiver_mesh = VertexOnlyMesh(mesh, receiver_locations)
    V_r = FunctionSpace(receiver_mesh, "DG", 0)
    with stop_annotating():  # the synthetic data, from the true wave speed
        c_true = Function(V).interpolate(
            1.75 + 0.25 * tanh(20 * (0.25 - sqrt((x - 0.5) ** 2 + (z - 0.5) ** 2))))
        true_data_receivers = []
        f = Cofunction(V.dual())
        solver, u_np1, u_n, u_nm1 = wave_equation_solver(c_true, f, dt, V)
        interpolate_receivers = interpolate(u_np1, V_r)
        for step in range(n_steps):
            f.assign(ricker_wavelet(step * dt, frequency_peak) * q_s)
            solver.solve()
            u_nm1.assign(u_n)
            u_n.assign(u_np1)
            true_data_receivers.append(assemble(interpolate_receivers))
    c_guess = initial(Function(V).interpolate(1.5), control)
    start(schedule, tmp_path, annotate)
    f = Cofunction(V.dual())
    solver, u_np1, u_n, u_nm1 = wave_equation_solver(c_guess, f, dt, V)
    interpolate_receivers = interpolate(u_np1, V_r)
    J_val = 0.0
    for step in steps(schedule, n_steps, annotate):
        f.assign(ricker_wavelet(step * dt, frequency_peak) * q_s)
        solver.solve()
        u_nm1.assign(u_n)
        u_n.assign(u_np1)
        guess_receiver = assemble(interpolate_receivers)
        misfit = guess_receiver - true_data_receivers[step]
        J_val += 0.5 * assemble(inner(misfit, misfit) * dx)
    return finish(J_val, c_guess, Function(V).interpolate(0.2 * x * (1 - x) * z), annotate)


def _variant(problem, **options):
    def run(*args, **kwargs):
        return problem(*args, **kwargs, **options)

    run.__name__ = problem.__name__
    return run


STEPS = {"full_waveform_inversion": 20}  # steps where the default N_STEPS is too few

IDIOMS = {
    "control_interpolate": taped_control,
    "control_project": _variant(taped_control, make="project"),
    "control_assign": _variant(taped_control, make="assign"),
    "control_r_assign": r_control_taped,
    "function_bc": function_bc,
    "function_bc_untaped": _variant(function_bc, taped_bc=False),
    "cofunction_forcing": cofunction_forcing,
    "time_after_step": time_after_step,
    "copy_first": copy_first,
    "full_waveform_inversion": full_waveform_inversion,
}
