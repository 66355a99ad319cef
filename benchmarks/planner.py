"""The planner against brute force: its pick, measured, next to every candidate it compared.

Three problems with different cost profiles (J = sum ||u_n||^2, control = initial state,
200 steps):

- ``heat``: cheap linear heat (P1, 48 x 48, LU), memory budget 1/5 of storing everything;
- ``burgers``: viscous Burgers (CG2, 250 cells, Newton with LU), memory budget 1/5;
- ``disk``: heat (P1, 64 x 64) with a memory budget of 1/12 of storing everything and a
  disk budget of twice it.

One process per problem: it tapes the run with ``enable_checkpointing("auto", ...)``, which
plans; then it runs the plan's pick ("auto", planning afresh each time) and every candidate
of that plan, each once to warm up and then five times round-robin, so that the speed of
the process (which varies by +-25 % from one process to the next on a shared machine)
is the same for all. A run is taped forward plus one gradient; the median of the five
counts. Reported: the pick's time over the fastest candidate's (goal <= 1.10), each auto
run's predicted over measured time (goal within 25 %), peak bytes against the budgets, and
the plan's schedule plotted to ``plan-NAME.png``. Run by hand (about 15 minutes; a quick
check: ``PLANNER_REPEATS=1 ... --steps 20 --only heat``):

    python benchmarks/planner.py --out results/
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from problems import run, write_results  # noqa: E402 - the benchmarks' shared problems

STEPS = 200
REPEATS = int(os.environ.get("PLANNER_REPEATS", 5))
PROBLEMS = {  # name: (problem, cells, memory share of store-all, disk share)
    "heat": ("heat", 48, 1 / 5, 0),
    "burgers": ("burgers", 250, 1 / 5, 0),
    "disk": ("heat", 64, 1 / 12, 2),
}


def _tape(problem: str, cells: int, steps: int, schedule) -> dict:
    """Tape ``problem`` under ``schedule`` and take one gradient (problems.run), with stats."""
    import fe_adjoint

    result = run("fe_adjoint", steps, schedule, cells, problem)
    stats = fe_adjoint.stats()
    return {"seconds": result["forward_s"] + result["gradient_s"],
            "dJ_norm": result["dJ_norm"], "forward_steps": stats["forward_steps"],
            "peak": stats["peak_total_bytes"], "schedule": stats.get("schedule", ""),
            "costs": stats["costs"]}


def child(name: str, steps: int, out: str) -> None:
    sys.argv = sys.argv[:1]  # PETSc would read the options below as its own
    from checkpoint_schedules import SingleMemoryStorageSchedule

    import fe_adjoint
    from fe_adjoint import AutoSchedule

    problem, cells, memory_share, disk_share = PROBLEMS[name]
    _tape(problem, cells, 3, SingleMemoryStorageSchedule())
    store_all = steps * fe_adjoint.stats()["costs"]["adjoint_bytes"]
    budget = {"memory": int(memory_share * store_all), "disk": int(disk_share * store_all)}
    auto = AutoSchedule(steps, **budget)
    _tape(problem, cells, steps, auto)  # warm-up, and the plan the candidates come from
    chosen = auto.plan
    fe_adjoint.plot_schedule(chosen, steps, os.path.join(out, f"plan-{name}.png"))
    runs = {"auto": lambda: AutoSchedule(steps, **budget),
            **{c.label(): c.make for c in chosen.candidates}}
    for make in list(runs.values())[1:]:
        _tape(problem, cells, steps, make())  # warm-up
    measured = {label: [] for label in runs}
    for _ in range(REPEATS):
        for label, make in runs.items():
            schedule = make()
            measured[label].append(_tape(problem, cells, steps, schedule))
            if label == "auto":  # each auto run plans, and predicts, from its own probe
                measured[label][-1]["predicted_s"] = schedule.plan.predicted_s
    predicted = dict(zip([c.label() for c in chosen.candidates], chosen.seconds))
    print(json.dumps({
        "budget": budget, "costs": chosen.costs.as_dict(), "choice": chosen.choice.label(),
        "predicted": predicted, "table": chosen.table(),
        "runs": {label: {"median_s": statistics.median(r["seconds"] for r in results),
                         "times": [r["seconds"] for r in results],
                         "picks": [r["schedule"] for r in results],
                         "predicted_over_measured": statistics.median(
                             r.get("predicted_s", float("nan")) / r["seconds"]
                             for r in results),
                         "forward_steps": results[-1]["forward_steps"],
                         "peak": results[-1]["peak"], "costs": results[-1]["costs"],
                         "dJ_norm": results[-1]["dJ_norm"]}
                 for label, results in measured.items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--only", nargs="*", default=list(PROBLEMS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.child:
        child(args.child, args.steps, args.out)
        return
    rows, results = [], {}
    for name in args.only:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--steps",
                              str(args.steps), "--out", args.out], check=True,
                             capture_output=True, text=True).stdout
        r = results[name] = json.loads(out.strip().splitlines()[-1])
        runs = r["runs"]
        auto = runs["auto"]
        candidates = {label: one for label, one in runs.items() if label != "auto"}
        best = min(candidates, key=lambda label: candidates[label]["median_s"])
        for label, one in candidates.items():
            print(f"  {name:<8} {label:<30} measured {one['median_s']:6.2f} s  predicted "
                  f"{r['predicted'][label]:6.2f} s  forward steps {one['forward_steps']}")
        ratio = auto["predicted_over_measured"]
        memory = auto["peak"]["RAM"] + auto["peak"]["WORK"]
        budget = r["budget"]
        assert memory <= budget["memory"] and auto["peak"]["DISK"] <= budget["disk"], r
        rows.append(
            f"| {name} | {budget['memory'] / 2**20:.2f} / {budget['disk'] / 2**20:.2f} | "
            f"{r['choice']} | {candidates[r['choice']]['median_s']:.2f} | "
            f"{auto['median_s']:.2f} | {best} | {candidates[best]['median_s']:.2f} | "
            f"{candidates[r['choice']]['median_s'] / candidates[best]['median_s']:.2f} | "
            f"{ratio:.2f} | {memory / 2**20:.2f} / "
            f"{auto['peak']['DISK'] / 2**20:.2f} |")
        print(rows[-1], flush=True)
    table = "\n".join([
        f"{args.steps} steps. Budgets and peaks in MiB (memory / disk); times: median of "
        f"{REPEATS} runs (taped forward + gradient), round-robin in one process per problem.",
        "\"pick s\": the pick run as a candidate; \"auto s\": runs that planned it themselves "
        "(probe and planning included); predicted / measured: the median over the auto runs "
        "of each run's own prediction over its time.",
        "", "| problem | budget | pick | pick s | auto s | fastest candidate | its s "
        "| pick / fastest | predicted / measured | peak |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows])
    write_results(args.out, "planner", results, table)


if __name__ == "__main__":
    main()
