"""TLM and Hessian actions against one gradient, and against plain firedrake.adjoint.

Two problems: the UQ demo's (non-linear reaction-diffusion, P1 C x C, R = 10 scalar
controls) and viscous Burgers (CG2, 250 cells, Newton, control: the initial condition).
Under store-all and Revolve, fe_adjoint's ``Jhat.derivative()``, ``Jhat.tlm(d)`` and
``Jhat.hessian(d)`` are timed in one process after a warm-up (fastest of ``--repeat``,
taking turns); plain firedrake.adjoint's Hessian action on the same script (no
checkpointing: its Hessian does not run under a schedule) likewise. Both Hessians are
checked against a central second difference of untaped runs, ``<d, H d> ~ (J(m + e d)
- 2 J(m) + J(m - e d)) / e^2``. Run by hand (minutes):

    python benchmarks/second_order.py --out results/
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.argv, ARGV = sys.argv[:1], sys.argv[1:]  # not PETSc options
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from checkpoint_schedules import Revolve, SingleMemoryStorageSchedule  # noqa: E402

from benchmarks.problems import write_results  # noqa: E402

EPSILON = 1e-3  # the second difference's step


class UQ:
    """The UQ demo's problem: J of R = 10 scalar source amplitudes."""

    name = "UQ reaction-diffusion"

    def __init__(self, steps: int, cells: int = 16):
        self.steps, self.cells = steps, cells

    def tape(self, schedule):
        """``(Jhat, control values, direction)`` on a fresh tape (plain if no schedule)."""
        from firedrake import Function

        from demos import uq_reaction_diffusion as uq

        Jhat, controls = uq.build(self.steps, self.cells, schedule, plain=schedule is None)
        direction = [Function(m.function_space()).assign(0.3 + 0.1 * k)
                     for k, m in enumerate(controls)]
        return Jhat, controls, direction

    def untaped(self, scale: float) -> float:
        """J, not taped, at the taped controls plus ``scale`` times the direction."""
        from demos import uq_reaction_diffusion as uq

        values = [1.0 + 0.2 * k + scale * (0.3 + 0.1 * k) for k in range(uq.N_CONTROLS)]
        return uq.untaped_functional(values, self.steps, self.cells)


class Burgers:
    """viscous Burgers (benchmarks.problems): J of the initial condition."""

    name = "Burgers CG2"

    def __init__(self, steps: int, cells: int = 250):
        self.steps, self.cells = steps, cells

    def _step(self):
        from benchmarks.problems import BurgersStep

        return BurgersStep(self.cells)

    @staticmethod
    def _direction(step):
        from firedrake import Function, SpatialCoordinate

        (x,) = SpatialCoordinate(step.V.mesh())
        return Function(step.V).interpolate(x * (1 - x))

    def tape(self, schedule):
        from firedrake.adjoint import Control, ReducedFunctional, pause_annotation

        from benchmarks.problems import start_taping

        step = self._step()
        loop = start_taping("firedrake.adjoint" if schedule is None else "fe_adjoint",
                            self.steps, schedule)
        J = step.start(step.m)
        for _ in loop:
            J = step(J)
        pause_annotation()
        return ReducedFunctional(J, Control(step.m)), step.m, self._direction(step)

    def untaped(self, scale: float) -> float:
        from firedrake import Function
        from firedrake.adjoint import stop_annotating

        step = self._step()
        with stop_annotating():
            J = step.start(Function(step.V).assign(step.m + scale * self._direction(step)))
            for _ in range(self.steps):
                J = step(J)
        return float(J)


def second_difference(problem) -> float:
    return (problem.untaped(EPSILON) - 2 * problem.untaped(0.0)
            + problem.untaped(-EPSILON)) / EPSILON**2


def curvature(hessian_action, direction) -> float:
    """<d, H d> from a Hessian action (a Cofunction or a list of them)."""
    actions = hessian_action if isinstance(hessian_action, list) else [hessian_action]
    directions = direction if isinstance(direction, list) else [direction]
    return sum(float(h.dat.data_ro @ d.dat.data_ro) for h, d in zip(actions, directions))


def fastest(calls: dict, repeat: int) -> dict:
    """The fastest time of each call, the calls taking turns ``repeat`` times."""
    times = {name: float("inf") for name in calls}
    results = {}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            results[name] = call()
            times[name] = min(times[name], time.perf_counter() - start)
    return times, results


def fe_row(problem, label: str, schedule, repeat: int, reference: float) -> dict:
    """fe_adjoint's gradient, TLM and Hessian times under ``schedule``."""
    Jhat, _, d = problem.tape(schedule)
    calls = {"gradient": Jhat.derivative, "tlm": lambda: Jhat.tlm(d),
             "hessian": lambda: Jhat.hessian(d)}
    fastest(calls, 1)  # warm-up: compile every kernel
    times, results = fastest(calls, repeat)
    dHd = curvature(results["hessian"], d)
    return {"problem": problem.name, "steps": problem.steps, "schedule": label,
            **{f"{k}_s": v for k, v in times.items()},
            "tlm_per_gradient": times["tlm"] / times["gradient"],
            "hessian_per_gradient": times["hessian"] / times["gradient"],
            "dHd": dHd, "dHd_error": abs(dHd - reference) / abs(reference)}


def measure(problem, schedules: dict, repeat: int) -> list[dict]:
    reference = second_difference(problem)
    rows = [fe_row(problem, label, make(problem.steps), repeat, reference)
            for label, make in schedules.items()]
    Jhat, _, d = problem.tape(None)
    Jhat.derivative()  # plain pyadjoint's Hessian needs an adjoint first
    Jhat.hessian(d)  # warm-up
    times, results = fastest({"gradient": Jhat.derivative, "hessian": lambda: Jhat.hessian(d)},
                             max(1, repeat - 1))
    dHd = curvature(results["hessian"], d)
    for row in rows:
        row.update({"plain_gradient_s": times["gradient"], "plain_hessian_s": times["hessian"],
                    "plain_dHd_error": abs(dHd - reference) / abs(reference),
                    "second_difference": reference})
    return rows


def table(rows) -> str:
    lines = ["| problem | schedule | gradient / tlm / Hessian (s) | tlm / gradient | "
             "Hessian / gradient | <d,Hd> error | plain Hessian (s) | plain <d,Hd> error |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['problem']}, {r['steps']} steps | {r['schedule']} | {r['gradient_s']:.3f} / "
            f"{r['tlm_s']:.3f} / {r['hessian_s']:.3f} | {r['tlm_per_gradient']:.2f} | "
            f"{r['hessian_per_gradient']:.2f} | {r['dHd_error']:.1e} | "
            f"{r['plain_hessian_s']:.2f} | {r['plain_dHd_error']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uq-steps", type=int, default=10)
    parser.add_argument("--burgers-steps", type=int, default=100)
    parser.add_argument("--snapshots", type=int, default=5, help="Revolve's snapshots")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for second_order.json / .md")
    args = parser.parse_args(ARGV)
    schedules = {"store-all": lambda n: SingleMemoryStorageSchedule(),
                 f"Revolve(N, {args.snapshots})": lambda n: Revolve(n, args.snapshots)}
    rows = [*measure(UQ(args.uq_steps), schedules, args.repeat),
            *measure(Burgers(args.burgers_steps), schedules, args.repeat)]
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_results(args.out, "second_order", rows, table(rows))
    else:
        print(table(rows))


if __name__ == "__main__":
    main()
