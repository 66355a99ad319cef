"""hessian_trace against R Hessian actions on the UQ demo's problem, in the same run.

Non-linear reaction-diffusion, P1, C x C, R = 10 scalar controls, store everything
(the Hessian actions' cheapest schedule). Reports the wall-time ratio (after a
warm-up that compiles both), the linear solves per step, and the growth of the
RSS during ``hessian_trace`` for several step counts. Run by hand (minutes):

    python benchmarks/hessian_trace.py --steps 10 --cells 16 --out results/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

sys.argv, ARGV = sys.argv[:1], sys.argv[1:]  # not PETSc options
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from checkpoint_schedules import SingleMemoryStorageSchedule  # noqa: E402

import fe_adjoint  # noqa: E402
from benchmarks.problems import current_rss_mb  # noqa: E402
from demos import uq_reaction_diffusion as uq  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def peak_rss_during(fn) -> tuple[float, float]:
    """(RSS before, highest RSS sampled while ``fn`` runs), in MB."""
    before, peak, done = current_rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], current_rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return before, max(peak[0], current_rss_mb())


def speed(steps: int, cells: int) -> dict:
    Jhat, controls = uq.build(steps, cells, SingleMemoryStorageSchedule())
    directions = uq.unit_directions(controls)
    fe_adjoint.hessian_trace(Jhat, directions)  # warm-up: compile every kernel once
    Jhat.hessian(directions[0])
    solves_before = dict(fe_adjoint.stats()["linear_solves"])
    trace, t_trace = timed(lambda: fe_adjoint.hessian_trace(Jhat, directions))
    solves = {k: v - solves_before[k] for k, v in fe_adjoint.stats()["linear_solves"].items()}
    actions, t_actions = timed(lambda: sum(
        float(Jhat.hessian(e)[k].dat.data_ro[0]) for k, e in enumerate(directions)))
    return {
        "steps": steps, "cells": cells, "R": len(directions),
        "trace": trace, "sum_of_actions": actions,
        "relative_difference": abs(trace - actions) / abs(actions),
        "seconds_trace": t_trace, "seconds_actions": t_actions,
        "time_ratio": t_trace / t_actions,
        "linear_solves_per_step": (solves["tangent"] + solves["second_order"]) / steps,
    }


def memory(steps: int, cells: int) -> dict:
    Jhat, controls = uq.build(steps, cells, SingleMemoryStorageSchedule())
    directions = uq.unit_directions(controls)
    fe_adjoint.hessian_trace(Jhat, directions)  # warm-up
    before, peak = peak_rss_during(lambda: fe_adjoint.hessian_trace(Jhat, directions))
    return {"steps": steps, "rss_before_mb": before, "rss_peak_mb": peak,
            "rss_growth_mb": peak - before,
            "peak_jets": fe_adjoint.stats()["trace_peak_jets"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--memory-steps", type=int, nargs="+", default=[10, 40, 160])
    parser.add_argument("--out", default=None, help="folder for hessian_trace.json")
    args = parser.parse_args(ARGV)
    results = {"speed": speed(args.steps, args.cells),
               "memory": [memory(n, args.cells) for n in args.memory_steps]}
    s = results["speed"]
    print(f"R = {s['R']}, {s['steps']} steps, {s['cells']}x{s['cells']}: hessian_trace "
          f"{s['seconds_trace']:.2f} s, {s['R']} Hessian actions {s['seconds_actions']:.2f} s, "
          f"ratio {s['time_ratio']:.3f}; traces agree to {s['relative_difference']:.1e}; "
          f"{s['linear_solves_per_step']:.0f} linear solves per step")
    for m in results["memory"]:
        print(f"N = {m['steps']:4d}: RSS growth during hessian_trace {m['rss_growth_mb']:.1f} MB "
              f"(before {m['rss_before_mb']:.1f} MB), peak jets {m['peak_jets']}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "hessian_trace.json"), "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
