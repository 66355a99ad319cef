"""Peak-RSS growth with the step count under Revolve(N, 5): fe_adjoint vs plain firedrake.adjoint.

Heat, P1, 64 x 64, N = 100 and 400. Each configuration runs in its own process
(peak RSS only grows); the growth is the peak minus the RSS just before taping.
Run by hand (minutes, not CI):

    python benchmarks/memory.py --out results/
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

TOOLS = ("fe_adjoint", "firedrake.adjoint")


def child(tool: str, steps: int, cells: int) -> None:
    sys.argv = sys.argv[:1]
    from checkpoint_schedules import Revolve

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from problems import run

    print(json.dumps(run(tool, steps, Revolve(steps, 5), cells)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results", help="directory for memory.json and memory.md")
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--cells", type=int, default=64)
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.cells)
        return
    os.makedirs(args.out, exist_ok=True)
    results = []
    for tool in TOOLS:
        for steps in args.steps:
            out = subprocess.run(
                [sys.executable, __file__, "--cells", str(args.cells), "--child", tool, str(steps)],
                check=True, capture_output=True, text=True,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            r = results[-1]
            growth = r["rss_peak_mb"] - r["rss_baseline_mb"]
            print(f"{tool:<18} N={steps:<4} growth {growth:7.1f} MB  forward {r['forward_s']:6.2f}"
                  f" s  gradient {r['gradient_s']:6.2f} s", flush=True)
    lines = ["| tool | N | RSS growth (MB) | growth N=max / N=min | forward (s) | gradient (s) |",
             "|---|---|---|---|---|---|"]
    for tool in TOOLS:
        rows = [r for r in results if r["tool"] == tool]
        growth = {r["steps"]: r["rss_peak_mb"] - r["rss_baseline_mb"] for r in rows}
        ratio = growth[max(growth)] / growth[min(growth)]
        for r in rows:
            lines.append(f"| {tool} | {r['steps']} | {growth[r['steps']]:.1f} | {ratio:.2f} | "
                         f"{r['forward_s']:.2f} | {r['gradient_s']:.2f} |")
    table = "\n".join(lines)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from problems import write_results

    write_results(args.out, "memory", results, table)


if __name__ == "__main__":
    main()
