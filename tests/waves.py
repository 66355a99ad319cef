"""A leapfrog acoustic wave, written as Firedrake's FWI demo writes its time loop.

KMV elements with their lumped quadrature, an explicit three-level step solved with one
Jacobi step, ``u_nm1.assign(u_n); u_n.assign(u_np1)`` after the solve, ``J +=`` per step;
optionally the demo's absorbing boundary term and a damping term (which makes running it
backwards drift). The control is the wave speed.
"""

from __future__ import annotations

from .helpers import finish, initial, start, steps

CELLS = 6


def leapfrog(schedule=None, tmp_path=None, n_steps=1000, control=None, annotate=True,
             damping=0.0, absorbing=True, comm=None):
    import finat
    from firedrake import (
        COMM_WORLD,
        Constant,
        Function,
        FunctionSpace,
        LinearVariationalProblem,
        LinearVariationalSolver,
        SpatialCoordinate,
        TestFunction,
        TrialFunction,
        UnitSquareMesh,
        assemble,
        dot,
        ds,
        dx,
        exp,
        grad,
        lhs,
        rhs,
    )

    start(schedule, tmp_path, annotate)
    mesh = UnitSquareMesh(CELLS, CELLS, comm=comm or COMM_WORLD)
    V = FunctionSpace(mesh, "KMV", 1)
    x, y = SpatialCoordinate(mesh)
    c = initial(Function(V).interpolate(1.0 + 0.2 * x * y), control)
    u, v = TrialFunction(V), TestFunction(V)
    u_np1, u_n, u_nm1 = Function(V), Function(V), Function(V)
    u_n.interpolate(exp(-80 * ((x - 0.4) ** 2 + (y - 0.5) ** 2)))
    u_nm1.assign(u_n)
    dt = 0.5 / n_steps
    rule = finat.quadrature.make_quadrature(V.finat_element.cell, 1, "KMV")
    m = 1 / (c * c)
    F = (m * (u - 2.0 * u_n + u_nm1) / Constant(dt**2) * v * dx(scheme=rule)
         + dot(grad(u_n), grad(v)) * dx(scheme=rule))
    if absorbing:
        F += (1 / c) * ((u_n - u_nm1) / dt) * v * ds
    if damping:
        F += damping * (u - u_nm1) / (2 * dt) * v * dx(scheme=rule)
    solver = LinearVariationalSolver(
        LinearVariationalProblem(lhs(F), rhs(F), u_np1),
        solver_parameters={"mat_type": "matfree", "ksp_type": "preonly", "pc_type": "jacobi"})
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        solver.solve()
        u_nm1.assign(u_n)
        u_n.assign(u_np1)
        J += assemble(c * u_np1 * u_np1 * dx)
    direction = Function(V).interpolate(0.1 * (1 + x - y))
    return finish(J, c, direction, annotate)
