"""Coarse step blocks: fe_adjoint against plain firedrake.adjoint on the same problems.

Heat (P1, 128 x 128, 200 steps, LU) and Burgers (CG2, 250 and 2000 cells, 200 steps,
Newton with LU), J = sum ||u_n||^2, each tool storing everything and under Revolve(N, 5).
Every configuration runs in its own process after a warm-up run of the same
configuration on 5 steps in that process (kernels compiled, caches warm). Reports
blocks per step, forward and gradient times, and the ratios. Run by hand (minutes):

    python benchmarks/coarse.py --out results/
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys

SIZES = [("heat", 128), ("burgers", 250), ("burgers", 2000)]
SCHEDULES = ("store-all", "revolve")
TOOLS = ("firedrake.adjoint", "fe_adjoint")


def child(problem: str, schedule_name: str, tool: str, steps: int, cells: int) -> None:
    sys.argv = sys.argv[:1]
    from checkpoint_schedules import Revolve, SingleMemoryStorageSchedule

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from problems import run

    def schedule(n):
        if schedule_name == "revolve":
            return Revolve(n, 5)
        return SingleMemoryStorageSchedule() if tool == "fe_adjoint" else None

    run(tool, 5, schedule(5), cells, problem)  # warm-up
    print(json.dumps(run(tool, steps, schedule(steps), cells, problem)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--cells", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.steps, args.cells)
        return
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for (problem, cells), schedule, tool in itertools.product(SIZES, SCHEDULES, TOOLS):
        out = subprocess.run(
            [sys.executable, __file__, "--steps", str(args.steps), "--cells",
             str(cells), "--child", problem, schedule, tool],
            check=True, capture_output=True, text=True,
        ).stdout
        r = results[(problem, cells, schedule, tool)] = json.loads(out.strip().splitlines()[-1])
        print(f"{problem:<8} {cells:5d} {schedule:<9} {tool:<18} blocks/step "
              f"{r['blocks_per_step']:.2f}  forward {r['forward_s']:7.2f} s  "
              f"gradient {r['gradient_s']:7.2f} s", flush=True)
    lines = ["| problem | cells | schedule | blocks/step plain → fe | gradient plain (s) "
             "| gradient fe (s) | gradient fe/plain | (fwd+adj)/fwd plain | (fwd+adj)/fwd fe "
             "| max rel. dJ diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (problem, cells), schedule in itertools.product(SIZES, SCHEDULES):
        plain = results[(problem, cells, schedule, "firedrake.adjoint")]
        fe = results[(problem, cells, schedule, "fe_adjoint")]
        diff = max(abs(a - b) for a, b in zip(plain["dJ"], fe["dJ"])) \
            / max(abs(b) for b in plain["dJ"])
        lines.append(
            f"| {problem} | {cells} | {schedule} | {plain['blocks_per_step']:.2f} → "
            f"{fe['blocks_per_step']:.2f} | {plain['gradient_s']:.2f} | "
            f"{fe['gradient_s']:.2f} | {fe['gradient_s'] / plain['gradient_s']:.2f} | "
            f"{1 + plain['gradient_s'] / plain['forward_s']:.2f} | "
            f"{1 + fe['gradient_s'] / fe['forward_s']:.2f} | {diff:.1e} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out, "coarse.json"), "w") as f:
        json.dump([{"config": list(k), **v} for k, v in results.items()], f, indent=1)
    with open(os.path.join(args.out, "coarse.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
