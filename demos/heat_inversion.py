"""Heat inversion: recover an initial temperature from its diffused final state, as a batch job.

    u_t = kappa lap u on the unit square, u = 0 on the boundary, u(0) = m,
    J(m) = 1/2 ||u(T) - d||^2 + alpha/2 ||m||^2,

d being the final state of a hidden initial condition. P1, backward Euler with LU
(SuperLU_DIST, on a mesh distributed the same way in every run, so that a job run again
continues bit for bit), the checkpoints on disk in node-local scratch
(:func:`fe_adjoint.node_local_dir`). It writes to ``--out`` (default ``results``):
``results.json`` (J and the gradient at the initial guess, the optimisation history, the
final control, as numbers that do not depend on the MPI partition), ``report.json`` (the
checkpointing report), ``control.h5`` (the final control, a Firedrake CheckpointFile) and
``history/``, from which a job that was ended continues. Run it with ``fe-adjoint demo
heat_inversion [--iterations K] ...`` or under ``mpiexec``; ``demos/slurm/job.sh`` runs it
as a Slurm job.
"""

import argparse
import json
import os
import sys

DEMO_ARGV, sys.argv = sys.argv[1:], sys.argv[:1]  # the demo's options are not PETSc options

from firedrake import *  # noqa: E402
from firedrake.adjoint import *  # noqa: E402

import fe_adjoint  # noqa: E402

# SuperLU_DIST: its parallel factorisation gives the same bits in every run (MUMPS', the
# default LU under mpiexec, does not)
LU = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "superlu_dist"}
PROBES = [(i, j) for i in (1, 2, 3) for j in (1, 2, 3)]  # sin(i pi x) sin(j pi y)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=24)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=10, help="optimisation iterations")
    parser.add_argument("--schedule", choices=fe_adjoint.SCHEDULE_NAMES, default="mixed-disk")
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--disk-dir", default=None, help="default: node-local scratch")
    parser.add_argument("--out", default="results")
    return parser.parse_args(argv)


def problem(args):
    """The taped forward run; returns the ReducedFunctional and the control."""
    # A job run again must compute the same bits as the job it continues: the "simple"
    # partitioner distributes the mesh the same way in every run (Firedrake's default may not)
    mesh = UnitSquareMesh(args.cells, args.cells,
                          distribution_parameters={"partitioner_type": "simple"})
    V = FunctionSpace(mesh, "CG", 1)
    x, y = SpatialCoordinate(mesh)
    u_old, u = Function(V, name="u_old"), Function(V, name="u")
    v, w = TestFunction(V), TrialFunction(V)
    dt, kappa, alpha = Constant(0.1 / args.steps), Constant(0.1), Constant(1e-4)
    solver = LinearVariationalSolver(
        LinearVariationalProblem((w * v + dt * kappa * inner(grad(w), grad(v))) * dx,
                                 u_old * v * dx, u, bcs=DirichletBC(V, 0.0, "on_boundary")),
        solver_parameters=LU,
    )

    def march(steps):
        for _ in steps:
            solver.solve()
            u_old.assign(u)
        return u_old

    with stop_annotating():  # the observation: the final state of a hidden initial condition
        u_old.interpolate(exp(-((x - 0.4) ** 2 + (y - 0.6) ** 2) / 0.02))
        d = Function(V, name="observation").assign(march(range(args.steps)))

    continue_annotation()
    disk_dir = args.disk_dir or fe_adjoint.node_local_dir()
    fe_adjoint.enable_checkpointing(
        fe_adjoint.schedule_by_name(args.schedule, args.steps, args.snapshots), disk_dir)
    m = Function(V, name="initial_condition")  # the initial guess: zero
    u_old.assign(m)
    uT = march(fe_adjoint.steps(args.steps))
    J = assemble(0.5 * (uT - d) ** 2 * dx + 0.5 * alpha * m**2 * dx)
    pause_annotation()
    # the gradient the optimiser sees is the L2 Riesz representer: a mass solve, by LU too
    riesz_map = RieszMap(V, "L2", solver_parameters=LU, constant_jacobian=True)
    return ReducedFunctional(J, Control(m, riesz_map=riesz_map)), m


def probes(f, mesh):
    """Partition-independent numbers of a Function or Cofunction: its pairings with PROBES."""
    x, y = SpatialCoordinate(mesh)
    V = f.function_space() if isinstance(f, Function) else f.function_space().dual()
    values = []
    for i, j in PROBES:
        phi = Function(V).interpolate(sin(i * pi * x) * sin(j * pi * y))
        values.append(float(assemble(f * phi * dx)) if isinstance(f, Function)
                      else float(assemble(action(f, phi))))
    return values


def main(argv=None):
    args = parse(DEMO_ARGV if argv is None else argv)
    Jhat, m = problem(args)
    mesh = m.function_space().mesh()
    rank0 = mesh.comm.rank == 0
    if rank0:
        os.makedirs(args.out, exist_ok=True)
    mesh.comm.barrier()
    J0, dJ0 = float(Jhat(m)), Jhat.derivative()
    results = {"processes": mesh.comm.size, "J0": J0, "gradient_probes": probes(dJ0, mesh)}
    history = os.path.join(args.out, "history")
    m_opt = fe_adjoint.minimize(Jhat, history=history,
                                options={"maxiter": args.iterations, "ftol": 0, "gtol": 0})
    results["iterations"] = fe_adjoint.OptimisationHistory(history, mesh.comm).iterations
    results["control_probes"] = probes(m_opt, mesh)
    results["control_norm"] = norm(m_opt)
    with CheckpointFile(os.path.join(args.out, "control.h5"), "w") as f:
        f.save_mesh(mesh)
        f.save_function(m_opt)
    fe_adjoint.save_report(os.path.join(args.out, "report.json"))
    if rank0:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        print(f"J at the initial guess {J0:.12e}; after {len(results['iterations'])} "
              f"iterations {results['iterations'][-1]['J']:.12e}; results in {args.out}")
    fe_adjoint.report()
    return results


if __name__ == "__main__":
    main()
