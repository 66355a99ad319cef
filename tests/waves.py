"""An acoustic wave by leapfrog, written as Firedrake's FWI demo writes its time loop, and
by velocity Verlet (:func:`verlet`).

KMV elements with their lumped quadrature, an explicit three-level step solved with one
Jacobi step, ``u_nm1.assign(u_n); u_n.assign(u_np1)`` after the solve, ``J +=`` per step;
optionally the demo's absorbing boundary term and a damping term (which makes running it
backwards drift). The control is the wave speed.

``clamped``: a zero Dirichlet boundary instead (a clamped membrane), which fe_adjoint does
not invert itself; ``declare`` then sets the schedule's inverse to a
:class:`fe_adjoint.DeclaredInverse` written as a user would (``"wrong"``: with a sign error).
"""

from __future__ import annotations

from .helpers import finish, initial, start, steps

CELLS = 6


def _wave(schedule, tmp_path, annotate, control, n_steps, comm=None):
    """What both schemes share: a fresh tape, the KMV space, its coordinates, the wave
    speed ``c`` (the control), the initial pulse, the lumped quadrature, ``dt``, ``1/c^2``.
    """
    import finat
    from firedrake import (
        COMM_WORLD,
        Function,
        FunctionSpace,
        SpatialCoordinate,
        UnitSquareMesh,
        exp,
    )

    start(schedule, tmp_path, annotate)
    mesh = UnitSquareMesh(CELLS, CELLS, comm=comm or COMM_WORLD)
    V = FunctionSpace(mesh, "KMV", 1)
    x, y = SpatialCoordinate(mesh)
    c = initial(Function(V).interpolate(1.0 + 0.2 * x * y), control)
    pulse = exp(-80 * ((x - 0.4) ** 2 + (y - 0.5) ** 2))
    rule = finat.quadrature.make_quadrature(V.finat_element.cell, 1, "KMV")
    return V, (x, y), c, pulse, rule, 0.5 / n_steps, 1 / (c * c)


def leapfrog(schedule=None, tmp_path=None, n_steps=1000, control=None, annotate=True,
             damping=0.0, absorbing=True, comm=None, clamped=False, declare=None):
    from firedrake import (
        Constant,
        DirichletBC,
        Function,
        LinearVariationalProblem,
        LinearVariationalSolver,
        TestFunction,
        TrialFunction,
        assemble,
        dot,
        ds,
        dx,
        grad,
        lhs,
        rhs,
    )

    V, (x, y), c, pulse, rule, dt, m = _wave(schedule, tmp_path, annotate, control, n_steps,
                                              comm)
    u, v = TrialFunction(V), TestFunction(V)
    u_np1, u_n, u_nm1 = Function(V), Function(V), Function(V)
    bubble = 16 * x * (1 - x) * y * (1 - y) if clamped else 1.0  # zero on a clamped boundary
    u_n.interpolate(bubble * pulse)
    u_nm1.assign(u_n)
    bcs = [DirichletBC(V, 0.0, "on_boundary")] if clamped else []
    F = (m * (u - 2.0 * u_n + u_nm1) / Constant(dt**2) * v * dx(scheme=rule)
         + dot(grad(u_n), grad(v)) * dx(scheme=rule))
    if absorbing and not clamped:
        F += (1 / c) * ((u_n - u_nm1) / dt) * v * ds
    if damping:
        F += damping * (u - u_nm1) / (2 * dt) * v * dx(scheme=rule)
    if declare:
        schedule.inverse = _clamped_inverse(u_n, u_nm1, c, rule, dt, bcs[0], declare)
    solver = LinearVariationalSolver(
        LinearVariationalProblem(lhs(F), rhs(F), u_np1, bcs=bcs),
        solver_parameters={"mat_type": "matfree", "ksp_type": "preonly", "pc_type": "jacobi"})
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        solver.solve()
        u_nm1.assign(u_n)
        u_n.assign(u_np1)
        J += assemble(c * u_np1 * u_np1 * dx)
    direction = Function(V).interpolate(0.1 * (1 + x - y))
    return finish(J, c, direction, annotate)


def _clamped_inverse(u_n, u_nm1, c, rule, dt, bc, declare):
    """The clamped leapfrog step backwards, as a user writes it: with lumped mass ``M_c``,
    ``u_(n-1) = 2 u_n - u_(n+1) - dt^2 M_c^-1 K u_n`` inside, zero on the boundary."""
    from firedrake import TestFunction, assemble, dot, dx, grad

    import fe_adjoint

    sign = -1.0 if declare == "wrong" else 1.0

    def step_back(after_n, after_nm1, speed):
        # after_n = u_(n+1), after_nm1 = u_n: overwrite them with u_n and u_(n-1)
        v = TestFunction(after_n.function_space())
        stiffness = assemble(dot(grad(after_nm1), grad(v)) * dx(scheme=rule))
        mass = assemble(1 / (speed * speed) * v * dx(scheme=rule))
        previous = (2 * after_nm1.dat.data_ro - after_n.dat.data_ro
                    - sign * dt**2 * stiffness.dat.data_ro / mass.dat.data_ro)
        after_n.assign(after_nm1)
        after_nm1.dat.data[:] = previous
        bc.apply(after_nm1)

    return fe_adjoint.DeclaredInverse((u_n, u_nm1), step_back, reads=(c,))


def verlet(schedule=None, tmp_path=None, n_steps=400, control=None, annotate=True):
    """The same wave by velocity Verlet, as a script writes it.

    A half-step velocity solve, ``u.assign(u + dt * w_half)``, a full-step velocity solve;
    KMV lumped mass, reflecting boundary; control: the wave speed.
    """
    from firedrake import (
        Function,
        LinearVariationalProblem,
        LinearVariationalSolver,
        TestFunction,
        TrialFunction,
        assemble,
        dot,
        dx,
        grad,
        lhs,
        rhs,
    )

    V, (x, y), c, pulse, rule, dt, m = _wave(schedule, tmp_path, annotate, control, n_steps)
    q, v = TrialFunction(V), TestFunction(V)
    u = Function(V).interpolate(pulse)
    w, w_half = Function(V), Function(V)

    def velocity_update(new, old):
        F = (m * (q - old) / (dt / 2) * v * dx(scheme=rule)
             + dot(grad(u), grad(v)) * dx(scheme=rule))
        return LinearVariationalSolver(
            LinearVariationalProblem(lhs(F), rhs(F), new),
            solver_parameters={"mat_type": "matfree", "ksp_type": "preonly",
                               "pc_type": "jacobi"})

    half, full = velocity_update(w_half, w), velocity_update(w, w_half)
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        half.solve()
        u.assign(u + dt * w_half)
        full.solve()
        J += assemble(c * u * u * dx)
    direction = Function(V).interpolate(0.1 * (1 + x - y))
    return finish(J, c, direction, annotate)
