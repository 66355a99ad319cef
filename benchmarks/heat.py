"""The heat problem the benchmarks run: P1, n x n square, backward Euler, LU, J = sum ||u_n||^2.

``run(tool, steps, schedule, cells)`` tapes it with plain firedrake.adjoint
(``tool="firedrake.adjoint"``, checkpointed by ``tape.enable_checkpointing``) or
with fe_adjoint, takes one gradient, and returns timings, step counts and RSS.
"""

from __future__ import annotations

import resource
import time


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def run(tool: str, steps: int, schedule, cells: int = 64) -> dict:
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
        assemble,
        dx,
        grad,
        inner,
        pi,
        sin,
    )
    from firedrake.adjoint import (
        Control,
        ReducedFunctional,
        Tape,
        continue_annotation,
        get_working_tape,
        pause_annotation,
        set_working_tape,
    )

    import fe_adjoint

    mesh = UnitSquareMesh(cells, cells)
    V = FunctionSpace(mesh, "CG", 1)
    x, y = SpatialCoordinate(mesh)
    m = Function(V).interpolate(sin(pi * x) * sin(pi * y))
    set_working_tape(Tape())
    continue_annotation()
    tape = get_working_tape()
    if tool == "fe_adjoint":
        fe_adjoint.enable_checkpointing(schedule)
        loop = fe_adjoint.steps(steps)
    else:
        tape.enable_checkpointing(schedule)
        loop = tape.timestepper(iter(range(steps)))
    u_old = Function(V).assign(m)
    u = Function(V)
    v, w = TestFunction(V), TrialFunction(V)
    dt = Constant(0.01)
    solver = LinearVariationalSolver(
        LinearVariationalProblem((w * v + dt * inner(grad(w), grad(v))) * dx,
                                 (u_old * v + dt * x * v) * dx, u,
                                 bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters={"ksp_type": "preonly", "pc_type": "lu",
                           "pc_factor_mat_solver_type": "mumps"},
    )
    baseline = current_rss_mb()
    start = time.perf_counter()
    J = 0.0
    for _ in loop:
        solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * dx)
    pause_annotation()
    forward = time.perf_counter() - start
    Jhat = ReducedFunctional(J, Control(m))
    start = time.perf_counter()
    dJ = Jhat.derivative()
    gradient = time.perf_counter() - start
    result = {
        "tool": tool,
        "steps": steps,
        "J": float(J),
        "dJ_norm": float(abs(dJ.dat.data_ro).sum()),
        "forward_s": forward,
        "gradient_s": gradient,
        "blocks_per_step": len(tape.get_blocks()) / steps,
        "rss_baseline_mb": baseline,
        "rss_peak_mb": rss_mb(),
    }
    if tool == "fe_adjoint":
        result["forward_steps"] = fe_adjoint.stats()["forward_steps"]
    return result
