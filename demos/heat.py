"""Heat equation: gradient of a time-accumulated functional with respect to the initial condition.

    u_t = lap u + x on the unit square, u = 0 on the boundary, u(0) = m,
    J(m) = sum_n ||u_n||^2,

P1, backward Euler, a LinearVariationalSolver with LU. fe_adjoint puts each time
step on the tape as one block and reuses one factorisation for every adjoint (and
replayed forward) step; with ``reuse_operators`` the taped forward factorises once too. Run it with
``fe-adjoint demo heat [--steps N] [--cells C] [--schedule revolve] [--snapshots S]``.
"""

import argparse
import sys

DEMO_ARGV, sys.argv = sys.argv[1:], sys.argv[:1]  # the demo's options are not PETSc options

from firedrake import *  # noqa: E402
from firedrake.adjoint import *  # noqa: E402

import fe_adjoint  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cells", type=int, default=64)
    parser.add_argument("--schedule", choices=fe_adjoint.SCHEDULE_NAMES, default="mixed")
    parser.add_argument("--snapshots", type=int, default=5)
    args = parser.parse_args(DEMO_ARGV if argv is None else argv)

    mesh = UnitSquareMesh(args.cells, args.cells)
    V = FunctionSpace(mesh, "CG", 1)
    x, y = SpatialCoordinate(mesh)
    m = Function(V, name="initial_condition").interpolate(sin(pi * x) * sin(pi * y))

    continue_annotation()
    fe_adjoint.enable_checkpointing(
        fe_adjoint.schedule_by_name(args.schedule, args.steps, args.snapshots))
    u_old, u = Function(V, name="u_old").assign(m), Function(V, name="u")
    v, w = TestFunction(V), TrialFunction(V)
    dt = Constant(0.01)
    solver = LinearVariationalSolver(
        LinearVariationalProblem((w * v + dt * inner(grad(w), grad(v))) * dx,
                                 (u_old * v + dt * x * v) * dx, u,
                                 bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters={"ksp_type": "preonly", "pc_type": "lu"},
    )
    fe_adjoint.reuse_operators(solver)  # opt-in: taped solves keep an unchanged operator
    J = 0.0
    for _ in fe_adjoint.steps(args.steps):
        solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * dx)
    pause_annotation()

    Jhat = ReducedFunctional(J, Control(m))
    gradient = Jhat.derivative(apply_riesz=True)
    blocks = [len(step) for step in get_working_tape().timesteps]
    print(f"schedule  {args.schedule}, {args.steps} steps, {max(blocks)} tape block(s) per step")
    print(f"J         {float(J):.12e}")
    print(f"|dJ|      {norm(gradient):.12e}")
    rate = taylor_test(Jhat, m, Function(V).interpolate(x * (1 - x) * y))
    print(f"Taylor test convergence rate {rate:.4f} ({'PASS' if rate >= 1.95 else 'FAIL'})")
    fe_adjoint.report()
    return rate


if __name__ == "__main__":
    main()
