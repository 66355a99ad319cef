"""FWI gradient: fe_adjoint's PointMisfit against firedrake.adjoint running the demo's code.

Firedrake's full-waveform-inversion problem (``demos/fwi.py``: KMV, lumped mass, one Ricker
source, 50 receivers on a VertexOnlyMesh) at a few sizes. Per size, three runs, each in
its own process (peak RSS only grows):

* ``firedrake.adjoint``: the demo's own loop (interpolate onto the receivers, assemble the
  misfit, ``J +=``), everything stored on the plain tape;
* ``fe store-all``: PointMisfit under ``SingleMemoryStorageSchedule``;
* ``fe revolve``: PointMisfit under ``Revolve(N, 10)``;
* ``fe reversible``: PointMisfit under ``ReversibleSchedule(N, N // 10)``: as many stored
  states as Revolve's 10 (an anchor every N/10 steps), the steps run backwards.

Reported: forward (taping) and gradient (the first ``derivative()``) time, an optimisation
iteration (``Jhat(c)`` at a new ``c`` and its ``derivative()``), peak RSS above the RSS
before taping up to the first gradient (in the JSON file also after the iteration), the
gradient's difference from firedrake.adjoint's, and the ratios. Run by
hand (minutes, not CI)::

    python benchmarks/fwi.py --out results/ [--sizes 50:500 100:1000] [--reflecting]

With ``--reflecting`` the boundary term is left out: the demo's absorbing term makes the
steps unstable backwards (their round-off grows ~10x per step at 100 x 100), so the
reversible run there recomputes its segments (``fallback_segments`` in the JSON file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RUNS = ("firedrake.adjoint", "fe store-all", "fe revolve", "fe reversible")


def child(run: str, cells: int, steps: int, receivers: int, absorbing: bool) -> dict:
    sys.argv = sys.argv[:1]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))
    sys.path.insert(0, here)
    from checkpoint_schedules import Revolve, SingleMemoryStorageSchedule
    from firedrake import Function
    from firedrake.adjoint import (
        Control,
        ReducedFunctional,
        Tape,
        continue_annotation,
        pause_annotation,
        set_working_tape,
    )
    from problems import current_rss_mb, rss_mb

    import fe_adjoint
    from demos import fwi

    s = fwi.survey(cells, steps, receivers, absorbing=absorbing)
    data = fwi.records(s, fwi.true_speed(s.V))
    c = Function(s.V).interpolate(1.5)
    set_working_tape(Tape())
    continue_annotation()
    steps_of = range
    if run != "firedrake.adjoint":
        schedule = {"fe store-all": lambda: SingleMemoryStorageSchedule(),
                    "fe revolve": lambda: Revolve(steps, 10),
                    "fe reversible": lambda: fe_adjoint.ReversibleSchedule(
                        steps, steps // 10)}[run]()
        fe_adjoint.enable_checkpointing(schedule)
        steps_of = fe_adjoint.steps
    baseline = current_rss_mb()
    start = time.perf_counter()
    J = fwi.misfit(s, c, data, by_hand=run == "firedrake.adjoint", steps=steps_of)
    pause_annotation()
    forward = time.perf_counter() - start
    Jhat = ReducedFunctional(J, Control(c))
    start = time.perf_counter()
    dJ = Jhat.derivative()
    gradient = time.perf_counter() - start
    dJ = [float(v) for v in dJ.dat.data_ro]
    forward_steps = fe_adjoint.stats()["forward_steps"] if run != "firedrake.adjoint" else steps
    fallbacks = (fe_adjoint.stats()["reversible"]["fallback_segments"]
                 if run == "fe reversible" else None)
    rss_growth = rss_mb() - baseline  # peak up to the first gradient
    start = time.perf_counter()  # an optimisation iteration: J and its gradient at a new c
    Jhat(Function(s.V).interpolate(1.55))
    Jhat.derivative()
    iteration = time.perf_counter() - start
    result = {"run": run, "cells": cells, "steps": steps, "J": float(J), "dJ": dJ,
              "forward_s": forward, "gradient_s": gradient, "iteration_s": iteration,
              "rss_growth_mb": rss_growth, "iteration_rss_growth_mb": rss_mb() - baseline,
              "forward_steps": forward_steps, "fallback_segments": fallbacks}
    return result


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--sizes", nargs="+", default=["50:500", "100:1000"],
                        help="CELLS:STEPS pairs")
    parser.add_argument("--receivers", type=int, default=50)
    parser.add_argument("--reflecting", action="store_true",
                        help="reflecting boundaries instead of the demo's absorbing term")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run, cells, steps = args.child
        print(json.dumps(child(run, int(cells), int(steps), args.receivers,
                               not args.reflecting)))
        return
    os.makedirs(args.out, exist_ok=True)
    results = []
    for size in args.sizes:
        cells, steps = size.split(":")
        for run in RUNS:
            out = subprocess.run([sys.executable, __file__, "--receivers", str(args.receivers),
                                  *(["--reflecting"] if args.reflecting else []),
                                  "--child", run, cells, steps],
                                 check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            r = results[-1]
            print(f"{cells}x{cells} N={steps:<5} {run:<18} forward {r['forward_s']:7.2f} s  "
                  f"gradient {r['gradient_s']:7.2f} s  iteration {r['iteration_s']:7.2f} s  "
                  f"RSS +{r['rss_growth_mb']:7.1f} MB", flush=True)
    lines = ["| mesh | N | run | forward (s) | gradient (s) | gradient / fd.adjoint | "
             "iteration (s) | peak RSS growth (MB) | RSS / fd.adjoint | forward steps | "
             "gradient difference |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for size in args.sizes:
        cells, steps = map(int, size.split(":"))
        rows = {r["run"]: r for r in results if (r["cells"], r["steps"]) == (cells, steps)}
        anchor = rows["firedrake.adjoint"]
        store_all = rows["fe store-all"]
        for run in RUNS:
            r = rows[run]
            diff = (np.linalg.norm(np.subtract(r["dJ"], anchor["dJ"]))
                    / np.linalg.norm(anchor["dJ"]))
            lines.append(
                f"| {cells}x{cells} | {steps} | {run} | {r['forward_s']:.2f} | "
                f"{r['gradient_s']:.2f} | {r['gradient_s'] / anchor['gradient_s']:.2f} | "
                f"{r['iteration_s']:.2f} | {r['rss_growth_mb']:.1f} | "
                f"{r['rss_growth_mb'] / anchor['rss_growth_mb']:.2f} | "
                f"{r['forward_steps']} | {diff:.1e} |")
        for run in ("fe revolve", "fe reversible"):
            r = rows[run]
            total = ((r["forward_s"] + r["gradient_s"])
                     / (store_all["forward_s"] + store_all["gradient_s"]))
            lines.append(f"| {cells}x{cells} | {steps} | {run[3:]} / fe store-all | "
                         f"{total:.2f} (forward + gradient) | "
                         f"{r['gradient_s'] / store_all['gradient_s']:.2f} | | "
                         f"{r['iteration_s'] / store_all['iteration_s']:.2f} | | | | |")
    table = "\n".join(lines)
    print(table)
    name = "fwi-reflecting" if args.reflecting else "fwi"
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "dJ"} for r in results], f, indent=1)
    with open(os.path.join(args.out, f"{name}.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
