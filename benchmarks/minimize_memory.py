"""Memory and disk over a long L-BFGS-B run: 50 iterations of ``minimize`` under a schedule.

Viscous Burgers (CG2, 64 cells, 30 steps, Newton with LU), control: the initial condition,
J = sum_n ||u_n - target||^2 + 1e-3 ||m||^2. For Revolve(30, 5) and a disk
MixedCheckpointSchedule(30, 5) it runs ``minimize(Jhat, method="L-BFGS-B",
options={"maxiter": 50})``, records the process RSS and the bytes under ``disk_dir`` after
every gradient, and reports their largest deviation from the value at the 5th gradient,
and the final gradient against a store-everything tape taped at the final control. Run
by hand (a few minutes):

    python benchmarks/minimize_memory.py --out results/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def disk_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(folder) for name in names)


def tape(schedule, disk_dir, control=None):
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
    from firedrake.adjoint import (
        Control,
        ReducedFunctional,
        Tape,
        continue_annotation,
        pause_annotation,
        set_working_tape,
    )

    import fe_adjoint

    mesh = UnitIntervalMesh(64)
    V = FunctionSpace(mesh, "CG", 2)
    (x,) = SpatialCoordinate(mesh)
    m = Function(V).interpolate(0.5 * sin(2 * pi * x))
    if control is not None:
        m.dat.data[:] = control
    target = Function(V).interpolate(sin(pi * x))
    set_working_tape(Tape())
    continue_annotation()
    fe_adjoint.enable_checkpointing(schedule, disk_dir=disk_dir)
    u_old, u, v = Function(V).assign(m), Function(V).assign(m), TestFunction(V)
    nu, dt = Constant(0.02), Constant(0.02)
    F = ((u - u_old) / dt * v + u * u.dx(0) * v + nu * u.dx(0) * v.dx(0)) * dx
    solver = NonlinearVariationalSolver(
        NonlinearVariationalProblem(F, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters={"snes_rtol": 1e-12, "ksp_type": "preonly", "pc_type": "lu"})
    J = 1e-3 * assemble(m**2 * dx)
    for _ in fe_adjoint.steps(30):
        solver.solve()
        u_old.assign(u)
        J += assemble((u - target) ** 2 * dx)
    pause_annotation()
    return ReducedFunctional(J, Control(m)), m


def run(name: str) -> dict:
    import numpy as np
    from checkpoint_schedules import (
        MixedCheckpointSchedule,
        Revolve,
        SingleMemoryStorageSchedule,
        StorageType,
    )
    from firedrake.adjoint import minimize

    schedule = {"revolve": Revolve(30, 5),
                "mixed-disk": MixedCheckpointSchedule(30, 5, storage=StorageType.DISK)}[name]
    disk_dir = tempfile.mkdtemp(prefix="fe_adjoint_bench-")
    samples, on_disk = [], []

    def after_evaluation(value, controls):  # the forward's checkpoints are on disk now
        on_disk.append(disk_bytes(disk_dir))

    def after_gradient(checkpoint, derivative, controls):
        samples.append((rss_mb(), on_disk[-1] if on_disk else 0))
        return derivative

    Jhat, m = tape(schedule, disk_dir)
    Jhat.eval_cb_post = after_evaluation
    Jhat.derivative_cb_post = after_gradient
    from pyadjoint.optimization.optimization import SciPyConvergenceError

    try:
        result = minimize(Jhat, method="L-BFGS-B",
                          options={"maxiter": 50, "ftol": 1e-30, "gtol": 1e-30, "disp": False})
    except SciPyConvergenceError:  # pyadjoint raises when the 50 iterations are used up
        result = Jhat.controls[0].tape_value()
    iterations = len(samples)
    Jhat(result)
    final = Jhat.derivative().dat.data_ro.copy()
    reference, _ = tape(SingleMemoryStorageSchedule(), disk_dir,
                        control=result.dat.data_ro.copy())
    expected = reference.derivative().dat.data_ro
    rss = np.array([s[0] for s in samples])
    disk = np.array([s[1] for s in samples], dtype=float)
    base_rss, base_disk = rss[4], disk[4]
    return {
        "schedule": name,
        "gradients": iterations,
        "rss_at_5th_mb": round(float(base_rss), 1),
        "rss_max_deviation_pct": round(float(np.max(np.abs(rss[4:] - base_rss)) / base_rss
                                             * 100), 2),
        "disk_at_5th_bytes": int(base_disk),
        "disk_max_deviation_pct": round(float(np.max(np.abs(disk[4:] - base_disk))
                                              / max(base_disk, 1) * 100), 2),
        "final_gradient_vs_store_all": float(np.linalg.norm(final - expected)
                                             / np.linalg.norm(expected)),
        "entries_left_after_clear": _cleared(Jhat, disk_dir),
    }


def _cleared(Jhat, disk_dir: str) -> int:
    Jhat.tape.clear_tape()
    return len(os.listdir(disk_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--schedule", choices=["revolve", "mixed-disk"])
    args = parser.parse_args()
    if args.schedule:  # one configuration, in this process
        sys.argv = sys.argv[:1]
        print(json.dumps(run(args.schedule)))
        return
    import subprocess

    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in ("revolve", "mixed-disk"):
        out = subprocess.run([sys.executable, __file__, "--schedule", name],
                             capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    with open(os.path.join(args.out, "minimize_memory.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
