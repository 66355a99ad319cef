"""Taping overhead: the taped forward of fe_adjoint, plain firedrake.adjoint and no tape.

Heat (P1, 64 x 64, LU) and viscous Burgers (CG2, 250 cells, Newton with LU), J = sum
||u_n||^2, N = 100 and 400 steps, each tool storing everything, under Revolve(N, 5) and
under MixedCheckpointSchedule(N, 5) in RAM, fe_adjoint with and without its opt-in
``reuse_operators(solver)``; the untaped script (annotation off) once per problem and N.
Every configuration runs in its own process after a warm-up run of the same configuration on
5 steps in that process. Reports the taped forward's seconds, its ratio to plain
firedrake.adjoint's and to the untaped run's, the gradient's seconds, and how far the opt-in
moves J and the gradient. Run by hand (about 15 minutes):

    python benchmarks/taping.py --out results/ [--steps 100 400] [--repeat 3]

With ``--repeat k`` each configuration runs k times (k processes, the configurations taking
turns) and the fastest counts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from problems import run, run_untaped, write_results  # noqa: E402 - the shared problems

SIZES = {"heat": 64, "burgers": 250}
SCHEDULES = ("store-all", "revolve", "mixed")
TOOLS = ("firedrake.adjoint", "fe_adjoint", "fe_adjoint+reuse")  # +reuse: reuse_operators


def child(problem: str, schedule_name: str, tool: str, steps: int, gradient: bool) -> None:
    sys.argv = sys.argv[:1]
    from checkpoint_schedules import (
        MixedCheckpointSchedule,
        Revolve,
        SingleMemoryStorageSchedule,
        StorageType,
    )

    cells = SIZES[problem]
    if tool == "untaped":
        run_untaped(5, cells, problem)  # warm-up
        print(json.dumps(run_untaped(steps, cells, problem)))
        return

    def schedule(n):
        if schedule_name == "revolve":
            return Revolve(n, 5)
        if schedule_name == "mixed":
            return MixedCheckpointSchedule(n, 5, storage=StorageType.RAM)
        return SingleMemoryStorageSchedule() if tool.startswith("fe_adjoint") else None

    reuse = tool == "fe_adjoint+reuse"
    tool = tool.removesuffix("+reuse")
    run(tool, 5, schedule(5), cells, problem, reuse=reuse)  # warm-up
    print(json.dumps(dict(run(tool, steps, schedule(steps), cells, problem, gradient=gradient,
                              reuse=reuse), reuse=reuse)))


def _run_child(problem, schedule, tool, steps, gradient) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", problem, schedule, tool, str(steps),
         str(int(gradient))],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _fastest_interleaved(args, problem, steps) -> dict:
    """Each configuration's fastest of ``args.repeat`` runs, the configurations taking turns.

    One round runs every configuration once, so a slow spell of the machine (timings here
    vary by up to 30 %) falls on all of them alike.
    """
    configs = [("store-all", "untaped")] + [(schedule, tool) for schedule in args.schedules
                                            for tool in TOOLS]
    runs: dict = {config: [] for config in configs}
    for _ in range(args.repeat):
        for schedule, tool in configs:
            runs[schedule, tool].append(_run_child(problem, schedule, tool, steps,
                                                   steps not in args.forward_only))
    return {config: min(found, key=lambda r: r["forward_s"]) for config, found in runs.items()}


def _difference(a, b) -> str:
    """Relative differences of J and of the gradient's samples between two runs."""
    found = f"{abs(a['J'] - b['J']) / abs(b['J']):.1e}"
    if "dJ" in a and "dJ" in b:
        d = max(abs(x - y) for x, y in zip(a["dJ"], b["dJ"])) / max(map(abs, b["dJ"]))
        found += f", {d:.1e}"
    return found


def _gradient(result) -> str:
    return f"{result['gradient_s']:.2f}" if "gradient_s" in result else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--problems", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--forward-only", type=int, nargs="*", default=[],
                        help="step counts whose runs only tape (no gradient)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        problem, schedule, tool, steps, gradient = args.child
        child(problem, schedule, tool, int(steps), gradient == "1")
        return
    os.makedirs(args.out, exist_ok=True)
    lines = ["| problem | N | schedule | forward untaped / plain / fe / fe+reuse (s) "
             "| fe / plain | fe / untaped | fe+reuse / plain | gradient plain / fe / fe+reuse (s) "
             "| J fe − plain | fe+reuse − fe: J, dJ |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    results = []
    for problem, steps in itertools.product(args.problems, args.steps):
        fastest = _fastest_interleaved(args, problem, steps)
        bare = fastest["store-all", "untaped"]
        results.append(bare)
        for schedule in args.schedules:
            plain, fe, reused = (fastest[schedule, tool] for tool in TOOLS)
            results += [dict(r, schedule=schedule) for r in (plain, fe, reused)]
            line = (f"| {problem} | {steps} | {schedule} | {bare['forward_s']:.2f} / "
                    f"{plain['forward_s']:.2f} / {fe['forward_s']:.2f} / "
                    f"{reused['forward_s']:.2f} | "
                    f"{fe['forward_s'] / plain['forward_s']:.2f} | "
                    f"{fe['forward_s'] / bare['forward_s']:.2f} | "
                    f"{reused['forward_s'] / plain['forward_s']:.2f} | "
                    f"{_gradient(plain)} / {_gradient(fe)} / {_gradient(reused)} | "
                    f"{fe['J'] - plain['J']:.1e} | {_difference(reused, fe)} |")
            lines.append(line)
            print(line, flush=True)
    write_results(args.out, "taping", results, "\n".join(lines))


if __name__ == "__main__":
    main()
