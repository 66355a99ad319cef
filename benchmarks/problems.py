"""The problems the benchmarks run, J = sum ||u_n||^2: heat (P1, n x n square, backward
Euler, LU) and viscous Burgers (CG2, n cells, Newton with LU).

``run(tool, steps, schedule, cells, problem)`` tapes one with plain firedrake.adjoint
(``tool="firedrake.adjoint"``, checkpointed by ``tape.enable_checkpointing``) or with
fe_adjoint, takes one gradient, and returns timings, step counts and RSS;
``run_untaped(steps, cells, problem)`` times the forward with annotation off.
"""

from __future__ import annotations

import resource
import time


def write_results(out: str, name: str, results, table: str) -> None:
    """Print ``table`` and write it to ``out/NAME.md``, and ``results`` to ``out/NAME.json``."""
    import json
    import os

    print(table)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(table + "\n")


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size of this process now, in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def start_taping(tool: str, steps: int, schedule, coarsen: bool = True, reuse_operators=()):
    """A fresh tape, annotation on, checkpointed by ``tool``; the loop to tape the steps in.

    ``schedule=None`` with plain firedrake.adjoint stores everything (no checkpointing);
    ``reuse_operators``: fe_adjoint's opt-in (solvers whose taped solves may keep their
    operator).
    """
    from firedrake.adjoint import Tape, continue_annotation, get_working_tape, set_working_tape

    import fe_adjoint

    set_working_tape(Tape())
    continue_annotation()
    if tool == "fe_adjoint":
        fe_adjoint.enable_checkpointing(schedule, coarsen=coarsen)
        fe_adjoint.reuse_operators(*reuse_operators)
        return fe_adjoint.steps(steps)
    tape = get_working_tape()
    if schedule is not None:
        tape.enable_checkpointing(schedule)
    return tape.timestepper(iter(range(steps)))


def run(tool: str, steps: int, schedule, cells: int = 64, problem: str = "heat",
        coarsen: bool = True, gradient: bool = True, reuse: bool = False) -> dict:
    """Tape ``problem`` with ``tool``, take one gradient; timings, step counts and RSS.

    ``schedule=None`` with plain firedrake.adjoint stores everything (no checkpointing);
    ``gradient=False`` only tapes (no gradient figures); ``reuse``: fe_adjoint's opt-in
    ``reuse_operators`` for the problem's solver.
    """
    from firedrake.adjoint import Control, ReducedFunctional, get_working_tape, pause_annotation

    import fe_adjoint

    step = PROBLEMS[problem](cells)
    m = step.m
    loop = start_taping(tool, steps, schedule, coarsen, [step.solver] if reuse else ())
    tape = get_working_tape()
    baseline = current_rss_mb()
    start = time.perf_counter()
    J = step.start(m)
    for _ in loop:
        J = step(J)
    pause_annotation()
    forward = time.perf_counter() - start
    result = {
        "tool": tool,
        "problem": problem,
        "steps": steps,
        "J": float(J),
        "forward_s": forward,
        "blocks_per_step": len(tape.get_blocks()) / steps,
        "rss_baseline_mb": baseline,
    }
    if gradient:
        Jhat = ReducedFunctional(J, Control(m))
        start = time.perf_counter()
        dJ = Jhat.derivative()
        result["gradient_s"] = time.perf_counter() - start
        result["dJ"] = [float(v) for v in dJ.dat.data_ro[:: max(1, len(dJ.dat.data_ro) // 50)]]
        result["dJ_norm"] = float(abs(dJ.dat.data_ro).sum())
    result["rss_peak_mb"] = rss_mb()
    if tool == "fe_adjoint":
        stats = fe_adjoint.stats()
        result["taped_solves"] = stats["taped_solves"]
        if gradient:
            result["forward_steps"] = stats["forward_steps"]
    return result


def run_untaped(steps: int, cells: int = 64, problem: str = "heat") -> dict:
    """The same forward run with annotation off: the script as its user runs it."""
    from firedrake.adjoint import stop_annotating

    step = PROBLEMS[problem](cells)
    with stop_annotating():
        start = time.perf_counter()
        J = step.start(step.m)
        for _ in range(steps):
            J = step(J)
        forward = time.perf_counter() - start
    return {"tool": "untaped", "problem": problem, "steps": steps, "J": float(J),
            "forward_s": forward, "rss_peak_mb": rss_mb()}


class HeatStep:
    """P1 heat on an n x n square, backward Euler, LU: one solve, a copy, J += ||u||^2."""

    def __init__(self, cells: int):
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
            dx,
            grad,
            inner,
            pi,
            sin,
        )

        mesh = UnitSquareMesh(cells, cells)
        self.V = V = FunctionSpace(mesh, "CG", 1)
        x, y = SpatialCoordinate(mesh)
        self.m = Function(V).interpolate(sin(pi * x) * sin(pi * y))
        v, w = TestFunction(V), TrialFunction(V)
        self.u_old, self.u = Function(V), Function(V)
        dt = Constant(0.01)
        self.solver = LinearVariationalSolver(
            LinearVariationalProblem((w * v + dt * inner(grad(w), grad(v))) * dx,
                                     (self.u_old * v + dt * x * v) * dx, self.u,
                                     bcs=DirichletBC(V, 0.0, "on_boundary")),
            solver_parameters={"ksp_type": "preonly", "pc_type": "lu",
                               "pc_factor_mat_solver_type": "mumps"},
        )

    def start(self, m):
        self.u_old.assign(m)
        return 0.0

    def __call__(self, J):
        from firedrake import assemble, dx

        self.solver.solve()
        self.u_old.assign(self.u)
        return J + assemble(self.u_old**2 * dx)


class BurgersStep(HeatStep):
    """Viscous Burgers, CG2 on n cells of (0, 1), Newton with LU: the same loop as heat."""

    def __init__(self, cells: int):
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
            dx,
            pi,
            sin,
        )

        mesh = UnitIntervalMesh(cells)
        self.V = V = FunctionSpace(mesh, "CG", 2)
        (x,) = SpatialCoordinate(mesh)
        self.m = Function(V).interpolate(sin(2 * pi * x))
        v = TestFunction(V)
        self.u_old, self.u = Function(V), Function(V)
        u, u_old = self.u, self.u_old
        nu, dt = Constant(0.01), Constant(0.01)
        F = ((u - u_old) / dt * v + u * u.dx(0) * v + nu * u.dx(0) * v.dx(0)) * dx
        self.solver = NonlinearVariationalSolver(
            NonlinearVariationalProblem(F, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
            solver_parameters={"snes_rtol": 1e-12, "snes_atol": 1e-14, "ksp_type": "preonly",
                               "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"},
        )

    def start(self, m):
        self.u.assign(m)
        return super().start(m)


PROBLEMS = {"heat": HeatStep, "burgers": BurgersStep}
