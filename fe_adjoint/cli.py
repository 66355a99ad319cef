"""Command-line front end: ``fe-adjoint info``, ``demo``, ``plan``, ``report`` and ``clean``."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path

DEMOS_DIR = Path(__file__).resolve().parent.parent / "demos"


def _demos() -> list[str]:
    return sorted(p.stem for p in DEMOS_DIR.glob("[!_]*.py")) if DEMOS_DIR.is_dir() else []


def _info(args) -> int:
    from .info import info

    info()
    return 0


def _demo(args) -> int:
    names = _demos()
    if args.name not in names:
        print(f"fe-adjoint: no demo {args.name!r}; demos: {', '.join(names) or 'none found'}",
              file=sys.stderr)
        return 2
    sys.argv = [str(DEMOS_DIR / f"{args.name}.py"), *args.demo_args]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


def _clean(args) -> int:
    from .checkpointing.storage import folders

    dead, elsewhere = folders.stale(args.disk_dir)
    for path in dead:
        print(f"{'stale' if args.dry_run else 'removed'}: {path} (its process has ended)")
        if not args.dry_run:
            folders.remove(path)
    for path in elsewhere:
        print(f"kept: {path} (made on another host; run fe-adjoint clean there)")
    if not dead and not elsewhere:
        print(f"no stale fe_adjoint checkpoint folders in {args.disk_dir}")
    return 0


def _plan(args) -> int:
    from .errors import ConfigurationError
    from .planning import StepCosts, parse_bytes, plan

    try:
        given = {name: value for name, value in (
            ("forward_s", args.forward_s), ("adjoint_s", args.adjoint_s),
            ("replay_s", args.replay_s),
            ("restart_bytes", args.step_bytes and parse_bytes(args.step_bytes)),
            ("adjoint_bytes", args.adjoint_bytes and parse_bytes(args.adjoint_bytes)),
            ("disk_write_bps", args.disk_write and parse_bytes(args.disk_write)),
            ("disk_read_bps", args.disk_read and parse_bytes(args.disk_read)),
            ("disk_latency_s", args.disk_latency_s),
        ) if value is not None}
        if args.from_report:
            costs = StepCosts.from_report(args.from_report, **given)
        else:
            missing = [f"--{n}" for n, key in (("forward-s", "forward_s"),
                                               ("adjoint-s", "adjoint_s"),
                                               ("step-bytes", "restart_bytes"))
                       if key not in given]
            if missing:
                print(f"fe-adjoint plan: give {', '.join(missing)} (or --from-report RUN.json)",
                      file=sys.stderr)
                return 2
            given.setdefault("adjoint_bytes", given["restart_bytes"])
            costs = StepCosts(**given)
        chosen = plan(args.steps, costs, args.memory, args.disk, args.expected_steps)
    except (ConfigurationError, OSError, KeyError) as exc:
        print(f"fe-adjoint plan: {exc}", file=sys.stderr)
        return 1
    print(chosen.explain())
    return 0


def _report(args) -> int:
    import json

    from .report.stats import format_report

    try:
        with open(args.saved) as file:
            saved = json.load(file)
        print(format_report(saved["stats"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"fe-adjoint report: cannot read {args.saved} as a saved fe_adjoint report "
              f"({type(exc).__name__}: {exc}); write one with fe_adjoint.save_report(path)",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``fe-adjoint`` command; return its exit code."""
    parser = argparse.ArgumentParser(prog="fe-adjoint", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the versions of the stack").set_defaults(run=_info)
    demo = commands.add_parser("demo", help="run a demo from demos/")
    demo.add_argument("name", help=f"one of: {', '.join(_demos())}")
    demo.add_argument("demo_args", nargs=argparse.REMAINDER, help="arguments for the demo")
    demo.set_defaults(run=_demo)
    planner = commands.add_parser(
        "plan", help="choose a checkpointing schedule from budgets and per-step costs",
        description="Choose a schedule that fits the budgets and is predicted fastest; "
        "exit status 1 if none fits (the message says what would).")
    planner.add_argument("--steps", type=int, help="number of time steps (omit: online)")
    planner.add_argument("--expected-steps", type=int,
                         help="for an online plan: the most steps the run may take")
    planner.add_argument("--memory", default="inf", help="memory budget, e.g. 4GiB")
    planner.add_argument("--disk", default="0", help="disk budget, e.g. 100GiB")
    planner.add_argument("--step-bytes", help="bytes of one step's restart data")
    planner.add_argument("--adjoint-bytes", help="bytes of one step's adjoint data "
                         "(default: --step-bytes)")
    planner.add_argument("--forward-s", type=float, help="seconds per taped forward step")
    planner.add_argument("--replay-s", type=float,
                         help="seconds per recomputed forward step (default: --forward-s)")
    planner.add_argument("--adjoint-s", type=float, help="seconds per adjoint step")
    planner.add_argument("--disk-write", help="disk write bandwidth per second, e.g. 500MB")
    planner.add_argument("--disk-read", help="disk read bandwidth per second, e.g. 1GB")
    planner.add_argument("--disk-latency-s", type=float,
                         help="seconds to create and close one checkpoint file")
    planner.add_argument("--from-report", help="take the costs from a saved run report")
    planner.set_defaults(run=_plan)
    reporter = commands.add_parser("report", help="print a saved run's checkpointing report")
    reporter.add_argument("saved", metavar="RUN.json",
                          help="a JSON file written by fe_adjoint.save_report")
    reporter.set_defaults(run=_report)
    clean = commands.add_parser(
        "clean", help="remove checkpoint folders left by processes that have ended")
    clean.add_argument("disk_dir", help="the disk_dir the runs used")
    clean.add_argument("--dry-run", action="store_true", help="only list them")
    clean.set_defaults(run=_clean)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
