"""Uncertainty quantification to second order: E[J(m + noise)] ~ J(m) + 1/2 tr(C H).

A non-linear reaction-diffusion equation on the unit square,

    u_t - kappa lap u + 4 u^3 = (1 + sin(3 t)) sum_k m_k phi_k(x, y),   u = 0 on the boundary,

driven by R = 10 source amplitudes ``m_k`` (scalar controls on the 'R' space) with
independent Gaussian noise of standard deviation ``sigma``. The expected value of
``J = sum_n dt ||u_n - u_target||^2`` under that noise is, to second order,
``J(m) + sigma^2/2 tr(H)``: fe_adjoint computes ``tr(H)`` exactly from 10 collapsed
directions, and as a Hutchinson estimate, each in ONE forward sweep, and compares
them with a Monte Carlo mean (and, with ``--check``, with R Hessian actions). Run it with
``fe-adjoint demo uq_reaction_diffusion [--steps N] [--cells C] [--mc 50] [--check]``.
"""

import argparse
import sys
import time

if __name__ == "__main__":
    DEMO_ARGV, sys.argv = sys.argv[1:], sys.argv[:1]  # the demo's options are not PETSc options

import numpy as np  # noqa: E402
from checkpoint_schedules import Revolve  # noqa: E402
from firedrake import *  # noqa: E402
from firedrake.adjoint import *  # noqa: E402

import fe_adjoint  # noqa: E402

N_CONTROLS = 10


def build(n_steps=10, cells=12, schedule=None, n_controls=N_CONTROLS, dt=0.05, plain=False):
    """Tape the model on a fresh tape; return ``(Jhat, controls)``.

    ``schedule``: a checkpoint_schedules schedule (default ``Revolve(n_steps, 3)``);
    ``plain=True`` tapes with plain firedrake.adjoint instead (for comparisons).
    """
    V, R = _spaces(cells)
    controls = [Function(R, name=f"m{k}").assign(1.0 + 0.2 * k) for k in range(n_controls)]
    set_working_tape(Tape())
    continue_annotation()
    if not plain:
        fe_adjoint.enable_checkpointing(schedule or Revolve(n_steps, 3))
    J = _run(V, controls, n_steps, dt, range if plain else fe_adjoint.steps)
    pause_annotation()
    return ReducedFunctional(J, [Control(m) for m in controls]), controls


def untaped_functional(values, n_steps=10, cells=12, dt=0.05):
    """J at the control values ``values`` (floats), nothing taped: for finite differences."""
    V, R = _spaces(cells)
    with stop_annotating():
        return _run(V, [Function(R).assign(value) for value in values], n_steps, dt, range)


def _spaces(cells):
    mesh = UnitSquareMesh(cells, cells)
    return FunctionSpace(mesh, "CG", 1), FunctionSpace(mesh, "R", 0)


def _run(V, controls, n_steps, dt, steps):
    """Run the model's time loop (``steps(n_steps)``); return J."""
    x, y = SpatialCoordinate(V.mesh())
    t = Constant(0.0)
    u_old, u = Function(V, name="u_old"), Function(V, name="u")
    v = TestFunction(V)
    modes = [sin((k // 2 + 1) * pi * x) * sin((k % 2 + 1) * pi * y)
             for k in range(len(controls))]
    source = (1 + sin(3 * t)) * sum(m * phi for m, phi in zip(controls, modes))
    kappa = 0.05
    F = ((u - u_old) / dt * v + kappa * inner(grad(u), grad(v)) + 4 * u**3 * v - source * v) * dx
    solver = NonlinearVariationalSolver(
        NonlinearVariationalProblem(F, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters={"snes_rtol": 1e-13, "snes_atol": 1e-15, "snes_stol": 0.0,
                           "ksp_type": "preonly", "pc_type": "lu"},
    )
    target = 0.5 * x * y
    J = 0.0
    for n in steps(n_steps):
        t.assign((n + 1) * dt)
        solver.solve()
        u_old.assign(u)
        J += assemble(dt * (u_old - target) ** 2 * dx)
    return J


def unit_directions(controls):
    """The R unit directions e_k of the scalar controls."""
    return [[Function(m.function_space()).assign(float(i == k)) for i, m in enumerate(controls)]
            for k in range(len(controls))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--sigma", type=float, default=0.3, help="noise std. deviation")
    parser.add_argument("--mc", type=int, default=50, help="Monte Carlo samples (0: none)")
    parser.add_argument("--check", action="store_true",
                        help="also sum the R Hessian actions (slow: one schedule run each)")
    args = parser.parse_args(DEMO_ARGV if argv is None else argv)

    Jhat, controls = build(args.steps, args.cells)
    m0 = [m.copy(deepcopy=True) for m in controls]
    J0 = Jhat(m0)
    directions = unit_directions(controls)

    start = time.perf_counter()
    trace = fe_adjoint.hessian_trace(Jhat, directions)
    t_trace = time.perf_counter() - start
    var = args.sigma**2
    print(f"J(m0)                       {J0:.10e}")
    print(f"tr H, collapsed (exact)     {trace:.10e}   {t_trace:.2f} s")
    actions = None
    if args.check:
        start = time.perf_counter()
        actions = sum(float(Jhat.hessian(e)[k].dat.data_ro[0]) for k, e in enumerate(directions))
        print(f"tr H, {len(directions)} Hessian actions     {actions:.10e}   "
              f"{time.perf_counter() - start:.2f} s  "
              f"(relative difference {abs(trace - actions) / abs(actions):.1e})")
    for samples in (16, 64):
        estimate = fe_adjoint.hessian_trace(Jhat, samples=samples, seed=1)
        print(f"tr H, Hutchinson S={samples:<3}      {estimate.value:.10e} "
              f"+- {estimate.std_error:.2e}")
    print(f"E[J] to second order        {J0 + 0.5 * var * trace:.10e}  "
          f"(sigma = {args.sigma})")
    if args.mc:
        rng = np.random.default_rng(0)
        values = []
        for _ in range(args.mc):
            sample = [Function(m.function_space()).assign(float(m.dat.data_ro[0])
                                                          + args.sigma * rng.standard_normal())
                      for m in m0]
            values.append(Jhat(sample))
        mean, error = np.mean(values), np.std(values, ddof=1) / np.sqrt(args.mc)
        print(f"E[J], Monte Carlo ({args.mc} runs) {mean:.10e} +- {error:.2e}")
    Jhat(m0)
    fe_adjoint.report()
    return trace, actions


if __name__ == "__main__":
    main()
