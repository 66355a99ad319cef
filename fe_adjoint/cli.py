"""Command-line front end: ``fe-adjoint info`` and ``fe-adjoint demo NAME``."""

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


def main(argv: list[str] | None = None) -> int:
    """Run the ``fe-adjoint`` command; return its exit code."""
    parser = argparse.ArgumentParser(prog="fe-adjoint", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the versions of the stack").set_defaults(run=_info)
    demo = commands.add_parser("demo", help="run a demo from demos/")
    demo.add_argument("name", help=f"one of: {', '.join(_demos())}")
    demo.add_argument("demo_args", nargs=argparse.REMAINDER, help="arguments for the demo")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
