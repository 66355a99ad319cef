"""Viscous Burgers: gradient of a time-accumulated functional with respect to the initial condition.

    u_t + u u_x = nu u_xx on (0, 1), u = 0 on the boundary, u(0) = m,
    J(m) = sum_n dt * ||u_n||^2,

taped with firedrake.adjoint, checkpointed by fe_adjoint under a
checkpoint_schedules schedule, verified by a Taylor test. Run it with
``fe-adjoint demo burgers [--steps N] [--schedule revolve] [--snapshots S]``.
"""

import argparse
import sys

DEMO_ARGV, sys.argv = sys.argv[1:], sys.argv[:1]  # the demo's options are not PETSc options

from firedrake import *  # noqa: E402
from firedrake.adjoint import *  # noqa: E402

import fe_adjoint  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--schedule", choices=fe_adjoint.SCHEDULE_NAMES, default="revolve")
    parser.add_argument("--snapshots", type=int, default=5)
    args = parser.parse_args(DEMO_ARGV if argv is None else argv)

    mesh = UnitIntervalMesh(args.cells)
    V = FunctionSpace(mesh, "CG", 2)
    (x,) = SpatialCoordinate(mesh)
    m = Function(V, name="initial_condition").interpolate(sin(2 * pi * x))

    continue_annotation()
    fe_adjoint.enable_checkpointing(
        fe_adjoint.schedule_by_name(args.schedule, args.steps, args.snapshots))
    u_old = Function(V, name="u_old").assign(m)
    u = Function(V, name="u").assign(m)
    v = TestFunction(V)
    nu, dt = Constant(1e-2), Constant(1.0 / args.steps)
    F = ((u - u_old) / dt * v + u * u.dx(0) * v + nu * u.dx(0) * v.dx(0)) * dx
    solver = NonlinearVariationalSolver(
        NonlinearVariationalProblem(F, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters={"snes_rtol": 1e-12, "snes_atol": 1e-14},
    )
    J = 0.0
    for _ in fe_adjoint.steps(args.steps):
        solver.solve()
        u_old.assign(u)
        J += assemble(dt * u_old**2 * dx)
    pause_annotation()

    Jhat = ReducedFunctional(J, Control(m))
    dJ = Jhat.derivative(apply_riesz=True)
    print(f"schedule  {args.schedule}, {args.steps} steps")
    print(f"J         {float(J):.12e}")
    print(f"|dJ|      {norm(dJ):.12e}")
    h = Function(V).interpolate(x * (1 - x))
    rate = taylor_test(Jhat, m, h)
    print(f"Taylor test convergence rate {rate:.4f} ({'PASS' if rate >= 1.95 else 'FAIL'})")
    fe_adjoint.report()
    return rate


if __name__ == "__main__":
    main()
