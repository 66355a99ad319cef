"""Full-waveform inversion: Firedrake's FWI demo problem with fe_adjoint's PointMisfit.

The acoustic wave equation with KMV elements and a lumped mass matrix, Ricker-wavelet point
sources, receivers on a VertexOnlyMesh and the misfit against their records summed over
the steps; the control is the wave speed ``c``. Firedrake's demo writes the misfit as three
taped operations per step (an interpolation onto the receivers, an assembly, an AdjFloat
sum); here it is ``fe_adjoint.PointMisfit``: one operation per step, the point-evaluation
matrix built once. Each source is one member of an Ensemble::

    python demos/fwi.py [--cells 20] [--steps 100] [--iterations 4] [--schedule revolve]
    mpiexec -n 2 python demos/fwi.py --sources 2      # one source per rank

It prints the misfit at every evaluation and writes ``fwi_velocity.png`` (true, initial
and recovered wave speed).
"""

import argparse
import sys
from dataclasses import dataclass

if __name__ == "__main__":
    DEMO_ARGV, sys.argv = sys.argv[1:], sys.argv[:1]  # the demo's options are not PETSc options

import finat  # noqa: E402
import numpy as np  # noqa: E402
from firedrake import *  # noqa: E402
from firedrake.adjoint import *  # noqa: E402

import fe_adjoint  # noqa: E402

FREQUENCY_PEAK = 7.0  # Hz, the Ricker wavelet's dominant frequency


@dataclass
class Survey:
    """The mesh, the KMV space, one source (as a Cofunction) and the receivers."""

    V: object
    source: object
    receivers: object
    dt: float
    steps: int
    absorbing: bool = True  # the demo's first-order absorbing boundary term

    @property
    def mesh(self):
        return self.V.mesh()


def survey(cells=20, steps=100, receivers=20, source=0, sources=1, comm=COMM_WORLD,
           final_time=0.8, absorbing=True):
    """Firedrake's FWI set-up on a ``cells x cells`` mesh, for source ``source`` of
    ``sources`` along the bottom; ``steps`` steps of ``final_time / steps`` seconds;
    without ``absorbing``, reflecting boundaries."""
    mesh = UnitSquareMesh(cells, cells, comm=comm)
    V = FunctionSpace(mesh, "KMV", 1)
    location = np.linspace((0.3, 0.1), (0.7, 0.1), sources)[source]
    V_s = FunctionSpace(VertexOnlyMesh(mesh, [location]), "DG", 0)
    q_s = Cofunction(V.dual()).interpolate(assemble(Function(V_s).assign(1.0)
                                                    * TestFunction(V_s) * dx))
    vom = VertexOnlyMesh(mesh, np.linspace((0.2, 0.9), (0.8, 0.9), receivers))
    return Survey(V, q_s, vom, final_time / steps, steps, absorbing)


def true_speed(V):
    x, z = SpatialCoordinate(V.mesh())
    return Function(V, name="c_true").interpolate(
        1.75 + 0.25 * tanh(20 * (0.125 - sqrt((x - 0.5) ** 2 + (z - 0.5) ** 2))))


def ricker_wavelet(t, fs, amp=1.0):
    ts = 1.5
    t0 = t - ts * np.sqrt(6.0) / (np.pi * fs)
    return (amp * (1.0 - (1.0 / 2.0) * (2.0 * np.pi * fs) * (2.0 * np.pi * fs) * t0 * t0)
            * np.exp((-1.0 / 4.0) * (2.0 * np.pi * fs) * (2.0 * np.pi * fs) * t0 * t0))


def wave_equation_solver(c, source_function, dt, V, absorbing=True):
    """The demo's explicit scheme: a diagonal (lumped) system, one Jacobi step."""
    u, v = TrialFunction(V), TestFunction(V)
    u_np1, u_n, u_nm1 = Function(V), Function(V), Function(V)
    quad_rule = finat.quadrature.make_quadrature(V.finat_element.cell,
                                                 V.ufl_element().degree(), "KMV")
    m = 1 / (c * c)
    time_term = m * (u - 2.0 * u_n + u_nm1) / Constant(dt**2) * v * dx(scheme=quad_rule)
    nf = (1 / c) * ((u_n - u_nm1) / dt) * v * ds
    a = dot(grad(u_n), grad(v)) * dx(scheme=quad_rule)
    F = time_term + a + nf if absorbing else time_term + a
    problem = LinearVariationalProblem(lhs(F), rhs(F) + source_function, u_np1)
    solver = LinearVariationalSolver(problem, solver_parameters={
        "mat_type": "matfree", "ksp_type": "preonly", "pc_type": "jacobi"})
    return solver, u_np1, u_n, u_nm1


def records(s: Survey, c):
    """The receivers' records of a run at wave speed ``c`` (untaped), one Function per step."""
    V_r = FunctionSpace(s.receivers, "DG", 0)
    with stop_annotating():
        f = Cofunction(s.V.dual())
        solver, u_np1, u_n, u_nm1 = wave_equation_solver(c, f, s.dt, s.V, s.absorbing)
        out = []
        for step in range(s.steps):
            f.assign(ricker_wavelet(step * s.dt, FREQUENCY_PEAK) * s.source)
            solver.solve()
            u_nm1.assign(u_n)
            u_n.assign(u_np1)
            out.append(assemble(interpolate(u_np1, V_r)))
    return out


def misfit(s: Survey, c, data, by_hand=False, steps=range):
    """The misfit of a run at ``c``: PointMisfit, or the demo's own loop (``by_hand``);
    ``steps(n)`` iterates over the steps (``fe_adjoint.steps`` under checkpointing)."""
    f = Cofunction(s.V.dual())
    solver, u_np1, u_n, u_nm1 = wave_equation_solver(c, f, s.dt, s.V, s.absorbing)
    if by_hand:
        interpolate_receivers = interpolate(u_np1, FunctionSpace(s.receivers, "DG", 0))
        J = 0.0
    else:
        J = fe_adjoint.PointMisfit(u_np1, s.receivers, data)
    for step in steps(s.steps):
        f.assign(ricker_wavelet(step * s.dt, FREQUENCY_PEAK) * s.source)
        solver.solve()
        u_nm1.assign(u_n)
        u_n.assign(u_np1)
        if by_hand:
            residual = assemble(interpolate_receivers) - data[step]
            J += 0.5 * assemble(inner(residual, residual) * dx)
        else:
            J.observe()
    return J if by_hand else J.value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--receivers", type=int, default=20)
    parser.add_argument("--sources", type=int, default=1,
                        help="ensemble members (divides the number of MPI ranks)")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--schedule", choices=fe_adjoint.SCHEDULE_NAMES, default="revolve")
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--plot", default="fwi_velocity.png")
    args = parser.parse_args(DEMO_ARGV if argv is None else argv)

    ensemble = Ensemble(COMM_WORLD, COMM_WORLD.size // args.sources)
    s = survey(args.cells, args.steps, args.receivers, ensemble.ensemble_comm.rank,
               args.sources, ensemble.comm)
    data = records(s, true_speed(s.V))
    c_guess = Function(s.V, name="c").interpolate(1.5)

    continue_annotation()
    fe_adjoint.enable_checkpointing(
        fe_adjoint.schedule_by_name(args.schedule, args.steps, args.snapshots),
        comm=ensemble.comm)
    J = misfit(s, c_guess, data, steps=fe_adjoint.steps)
    pause_annotation()

    evaluations, last = [], {}

    def report(value, control):  # value: this member's misfit
        value = ensemble.ensemble_comm.allreduce(float(value))
        evaluations.append(value)
        last["c"] = control
        if COMM_WORLD.rank == 0:
            print(f"evaluation {len(evaluations):3d}   misfit {value:.6e}", flush=True)

    Jhat = EnsembleReducedFunctional(J, Control(c_guess, riesz_map="l2"), ensemble,
                                     eval_cb_post=report)
    from pyadjoint.optimization.optimization import SciPyConvergenceError
    from pyadjoint.reduced_functional_numpy import ReducedFunctionalNumPy

    try:
        c_opt = minimize(ReducedFunctionalNumPy(Jhat), method="L-BFGS-B", bounds=(1.5, 2.0),
                         options={"maxiter": args.iterations, "disp": False})
    except SciPyConvergenceError:  # pyadjoint's word for "stopped after maxiter"
        c_opt = last["c"]
    if COMM_WORLD.rank == 0:
        print(f"schedule {args.schedule}, {args.steps} steps, {args.sources} source(s): "
              f"misfit {evaluations[0]:.4e} -> {min(evaluations):.4e}")
        fe_adjoint.report()
    if ensemble.comm.size == 1 and ensemble.ensemble_comm.rank == 0:  # a whole mesh here
        _plot(args.plot, [true_speed(s.V), Function(s.V).interpolate(1.5), c_opt],
              ["true", "initial", "recovered"])
    return evaluations


def _plot(path, speeds, titles):
    """One panel per wave speed, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(speeds), figsize=(4 * len(speeds), 3.5))
    for ax, c, title in zip(axes, speeds, titles):
        collection = tripcolor(c, axes=ax, vmin=1.5, vmax=2.0)
        ax.set_title(title)
        ax.set_aspect("equal")
    fig.colorbar(collection, ax=axes, label="wave speed (km/s)")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
