"""Test problems, schedules and references shared by the Firedrake tests.

Every problem is built on a fresh tape by ``build(schedule)``; ``schedule=None``
tapes with plain firedrake.adjoint (no checkpointing), which gives the
reference: its gradient *after re-evaluating* the functional at the same
control, itself checked against central finite differences.

Newton solves use tight tolerances so that the discrete solution, and so the
true gradient, is defined to round-off.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from checkpoint_schedules import (
    DiskRevolve,
    EndReverse,
    Forward,
    HRevolve,
    MixedCheckpointSchedule,
    MultistageCheckpointSchedule,
    PeriodicDiskRevolve,
    Revolve,
    SingleDiskStorageSchedule,
    SingleMemoryStorageSchedule,
    StorageType,
    TwoLevelCheckpointSchedule,
)

N_STEPS = 6
NEWTON = {"snes_rtol": 1e-14, "snes_atol": 1e-15, "snes_stol": 0.0, "ksp_type": "preonly",
          "pc_type": "lu"}

SCHEDULES: dict[str, Callable[[int], Any]] = {
    "single_memory": lambda n: SingleMemoryStorageSchedule(),
    "single_disk": lambda n: SingleDiskStorageSchedule(),
    "single_disk_move": lambda n: SingleDiskStorageSchedule(move_data=True),
    "revolve": lambda n: Revolve(n, 2),
    "hrevolve": lambda n: HRevolve(n, 1, 1),
    "disk_revolve": lambda n: DiskRevolve(n, 2),
    "periodic_disk_revolve": lambda n: PeriodicDiskRevolve(n, 2),
    "multistage_ram": lambda n: MultistageCheckpointSchedule(n, 2, 0),
    "multistage_disk": lambda n: MultistageCheckpointSchedule(n, 1, 2),
    "mixed_ram": lambda n: MixedCheckpointSchedule(n, 2, storage=StorageType.RAM),
    "mixed_disk": lambda n: MixedCheckpointSchedule(n, 2, storage=StorageType.DISK),
    "two_level_ram": lambda n: TwoLevelCheckpointSchedule(3, 1, binomial_storage=StorageType.RAM),
    "two_level_disk": lambda n: TwoLevelCheckpointSchedule(3, 1, binomial_storage=StorageType.DISK),
}


def launcher_environment(**extra) -> dict:
    """This process's environment for a child that starts MPI itself (mpiexec, sbatch).

    Without what Open MPI put there when this process, or the one that started it (a
    pytest-xdist controller), initialised MPI as a singleton: a child's mpiexec would take it
    for its own launcher's and fail.
    """
    import os

    return {**{k: v for k, v in os.environ.items()
               if not k.startswith(("OMPI_", "PMIX_", "OPAL_")) or "ALLOW_RUN_AS_ROOT" in k},
            **extra}


@dataclass
class Taped:
    """A taped problem: its reduced functional, control value and a perturbation direction."""

    Jhat: Any
    m: Any
    direction: Any


def fresh_tape():
    from firedrake.adjoint import Tape, continue_annotation, set_working_tape

    set_working_tape(Tape())
    continue_annotation()


CHECKPOINTING_OPTIONS: dict = {}  # extra options of enable_checkpointing (see uncoarsened)


@contextmanager
def uncoarsened():
    """Tape the problems built inside with pyadjoint's blocks and adjoints (coarsen=False)."""
    CHECKPOINTING_OPTIONS["coarsen"] = False
    try:
        yield
    finally:
        CHECKPOINTING_OPTIONS.clear()


def start(schedule, tmp_path, annotate):
    """Open a fresh tape (with fe_adjoint's schedule, if any), or run untaped."""
    import fe_adjoint

    if annotate:
        fresh_tape()
        if schedule is not None:
            fe_adjoint.enable_checkpointing(schedule, disk_dir=tmp_path, **CHECKPOINTING_OPTIONS)


def finish(J, m, direction, annotate):
    from firedrake.adjoint import Control, ReducedFunctional, pause_annotation

    pause_annotation()
    if not annotate:
        return float(J)
    return Taped(ReducedFunctional(J, Control(m)), m, direction)


def initial(default, control):
    """The control value to run at: ``control`` if given, else ``default``."""
    if control is None:
        return default
    if hasattr(default, "dat"):
        default.dat.data[:] = control.dat.data_ro  # same mesh construction, same layout
        return default
    return type(default)(float(control))


def heat(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True,
         variant="solver"):
    """Linear heat equation, P1, control: the initial condition.

    ``variant``: ``"solver"`` (a LinearVariationalSolver, zero Dirichlet boundary),
    ``"moving_boundary"`` (``solve(a == L)`` whose Dirichlet boundary moves half-way: a new
    step pattern) or ``"null_space"`` (no Dirichlet boundary, solved with the constants as
    null space by GMRES).
    """
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
        VectorSpaceBasis,
        assemble,
        dx,
        grad,
        inner,
        pi,
        sin,
        solve,
    )

    mesh = UnitSquareMesh(6, 6)
    V = FunctionSpace(mesh, "CG", 1)
    x, y = SpatialCoordinate(mesh)
    m = initial(Function(V).interpolate(sin(pi * x) * sin(pi * y) + x * y), control)
    start(schedule, tmp_path, annotate)
    u_old = Function(V).assign(m)
    u = Function(V)
    v, w = TestFunction(V), TrialFunction(V)
    dt = Constant(0.05)
    a = (w * v + dt * inner(grad(w), grad(v))) * dx
    L = (u_old * v + dt * x * v) * dx
    lu = {"ksp_type": "preonly", "pc_type": "lu"}
    if variant == "solver":
        solver = LinearVariationalSolver(
            LinearVariationalProblem(a, L, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
            solver_parameters=lu)
    elif variant == "null_space":
        solver = LinearVariationalSolver(
            LinearVariationalProblem(a, L, u),
            nullspace=VectorSpaceBasis(constant=True, comm=mesh.comm),
            solver_parameters={"ksp_type": "gmres", "pc_type": "ilu", "ksp_rtol": 1e-14})
    J = 0.0
    for n in steps(schedule, n_steps, annotate):
        if variant == "moving_boundary":
            boundary = 1 if n < n_steps // 2 else 3  # the left side, then the bottom
            solve(a == L, u, bcs=DirichletBC(V, 0.0, boundary), solver_parameters=lu)
        else:
            solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * dx)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * y), annotate)


heat_bc_switch = functools.partial(heat, variant="moving_boundary")
heat_null_space = functools.partial(heat, variant="null_space")


def burgers(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True,
            reuse=False):
    """Viscous Burgers, CG2 in 1D, control: the initial condition.

    ``reuse``: its solver opted in to :func:`fe_adjoint.reuse_operators`.
    """
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

    import fe_adjoint

    mesh = UnitIntervalMesh(16)
    V = FunctionSpace(mesh, "CG", 2)
    (x,) = SpatialCoordinate(mesh)
    m = initial(Function(V).interpolate(sin(2 * pi * x)), control)
    start(schedule, tmp_path, annotate)
    u_old = Function(V).assign(m)
    u = Function(V).assign(m)
    v = TestFunction(V)
    nu, dt = Constant(0.01), Constant(0.05)
    F = ((u - u_old) / dt * v + u * u.dx(0) * v + nu * u.dx(0) * v.dx(0)) * dx
    solver = NonlinearVariationalSolver(
        NonlinearVariationalProblem(F, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters=NEWTON,
    )
    if reuse and annotate:
        fe_adjoint.reuse_operators(solver)
    J = 0.0
    for _ in steps(schedule, n_steps, annotate):
        solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * dx)
    return finish(J, m, Function(V).interpolate(x * (1 - x) * (x + 0.3)), annotate)


def reaction_diffusion(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None,
                       annotate=True, comm=None):
    """Non-linear reaction-diffusion, a time Constant re-assigned every step, an R-space control."""
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
        cos,
        dx,
        grad,
        inner,
    )

    mesh = UnitSquareMesh(4, 4, **({"comm": comm} if comm is not None else {}))
    V = FunctionSpace(mesh, "CG", 1)
    R = FunctionSpace(mesh, "R", 0)
    x, y = SpatialCoordinate(mesh)
    amplitude = initial(Function(R).assign(1.5), control)
    start(schedule, tmp_path, annotate)
    dt = 0.1
    t = Constant(0.0)
    u_old = Function(V)
    u = Function(V)
    v = TestFunction(V)
    source = amplitude * cos(3.0 * t) * x * y
    F = ((u - u_old) / dt * v + 0.1 * inner(grad(u), grad(v)) + u**3 * v - source * v) * dx
    solver = NonlinearVariationalSolver(NonlinearVariationalProblem(F, u), solver_parameters=NEWTON)
    J = 0.0
    for n in steps(schedule, n_steps, annotate):
        t.assign((n + 1) * dt)
        solver.solve()
        u_old.assign(u)
        J += assemble(u_old**2 * dx)
    return finish(J, amplitude, Function(R).assign(0.7), annotate)


def recurrence(schedule=None, tmp_path=None, n_steps=N_STEPS, control=None, annotate=True):
    """A scalar AdjFloat recurrence u <- u**2/2 + m, J += u**2."""
    from firedrake.adjoint import AdjFloat

    start(schedule, tmp_path, annotate)
    m = initial(AdjFloat(0.3), control)
    u = AdjFloat(0.4)
    J = AdjFloat(0.0)
    for _ in steps(schedule, n_steps, annotate):
        u = u * u / 2 + m
        J = J + u * u
    return finish(J, m, AdjFloat(1.0), annotate)


PROBLEMS = {
    "heat": heat,
    "burgers": burgers,
    "reaction_diffusion": reaction_diffusion,
    "recurrence": recurrence,
}


def steps(schedule, n, annotate=True):
    from firedrake.adjoint import get_working_tape

    import fe_adjoint

    if not annotate:
        return range(n)
    if schedule is None:
        return get_working_tape().timestepper(iter(range(n)))
    return fe_adjoint.steps(n)


# -- values -----------------------------------------------------------------------------------
def as_array(value) -> np.ndarray:
    """The local coefficients of a derivative, control or direction."""
    if isinstance(value, np.ndarray):
        return value.ravel()
    if hasattr(value, "dat"):
        return np.array(value.dat.data_ro, dtype=float).ravel()
    return np.array([float(value)])


def perturbed(m, direction, h):
    """m + h * direction as a new control value."""
    if hasattr(m, "dat"):
        out = m.copy(deepcopy=True)
        out.dat.data[:] += h * direction.dat.data_ro
        return out
    return type(m)(float(m) + h * float(direction))


def pairing(derivative, direction) -> float:
    """<dJ, direction>, summed over MPI ranks."""
    from mpi4py import MPI

    local = float(np.dot(as_array(derivative), as_array(direction)))
    if hasattr(direction, "dat"):
        return direction.function_space().mesh().comm.allreduce(local, op=MPI.SUM)
    return local


def relative_error(a, b) -> float:
    a, b = as_array(a), as_array(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def control_values(taped):
    """The control values every test visits: the taping point, then two others."""
    return [taped.m, perturbed(taped.m, taped.direction, 0.5),
            perturbed(taped.m, taped.direction, -0.3)]


def true_derivative_fd(problem, value, direction, h=1e-4) -> float:
    """Central finite difference of the functional along ``direction``, from untaped runs."""
    from firedrake.adjoint import pause_annotation

    pause_annotation()
    plus = problem(control=perturbed(value, direction, h), annotate=False)
    minus = problem(control=perturbed(value, direction, -h), annotate=False)
    return (plus - minus) / (2 * h)


def reference(problem, control_values):
    """The store-everything gradient (fe_adjoint, SingleMemory) after re-evaluation at each
    control value, checked against central finite differences of untaped runs.

    Returns ``[(J, dJ as an array)]``.
    """
    taped = problem(SingleMemoryStorageSchedule())
    out = []
    for value in control_values(taped):
        J = float(taped.Jhat(value))
        dJ = as_array(taped.Jhat.derivative()).copy()
        out.append((J, dJ))
    for value, (_, dJ) in zip(control_values(taped), out):
        d = taped.direction
        exact = pairing(dJ, d)
        scale = np.linalg.norm(dJ) * np.linalg.norm(as_array(d))
        assert abs(exact) > 1e-3 * scale, "direction nearly orthogonal to the gradient"
        fd = true_derivative_fd(problem, value, d)
        assert abs(fd - exact) <= 1e-6 * abs(exact), (fd, exact)
    return out


def gradient_at(problem, value):
    """The store-everything gradient at ``value``, as an array, from a fresh taping."""
    taped = problem(SingleMemoryStorageSchedule(), control=value)
    return as_array(taped.Jhat.derivative()).copy()


def second_order_reference(problem, control_values):
    """TLM and Hessian actions (store-everything, after re-evaluation) along the problem's
    direction at each control value, checked against central finite differences of J and
    of the gradient. Returns ``[(tlm, H d as an array)]``.
    """
    taped = problem(SingleMemoryStorageSchedule())
    values = control_values(taped)
    d = taped.direction
    out = []
    for value in values:
        taped.Jhat(value)
        out.append((float(taped.Jhat.tlm(d)), as_array(taped.Jhat.hessian(d)).copy()))
    for value, (tlm, hessian) in zip(values, out):
        fd = true_derivative_fd(problem, value, d)
        assert abs(fd - tlm) <= 1e-6 * abs(tlm), (fd, tlm)
        h = 1e-4
        fd_hessian = (gradient_at(problem, perturbed(value, d, h))
                      - gradient_at(problem, perturbed(value, d, -h))) / (2 * h)
        assert relative_error(fd_hessian, hessian) <= 1e-5
    return out


def dry_run_forward_steps(schedule, n: int) -> int:
    """Forward steps a schedule asks for, first forward included, up to its first EndReverse."""
    steps = 0
    for action in schedule:
        if isinstance(action, Forward):
            steps += min(action.n1, n) - action.n0
            if schedule.max_n is None and action.n1 >= n:
                schedule.finalize(n)
        if isinstance(action, EndReverse):
            return steps
