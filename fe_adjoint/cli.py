"""Command-line front end: ``fe-adjoint info``, ``demo NAME`` and ``clean DIR``."""

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


def main(argv: list[str] | None = None) -> int:
    """Run the ``fe-adjoint`` command; return its exit code."""
    parser = argparse.ArgumentParser(prog="fe-adjoint", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the versions of the stack").set_defaults(run=_info)
    demo = commands.add_parser("demo", help="run a demo from demos/")
    demo.add_argument("name", help=f"one of: {', '.join(_demos())}")
    demo.add_argument("demo_args", nargs=argparse.REMAINDER, help="arguments for the demo")
    demo.set_defaults(run=_demo)
    clean = commands.add_parser(
        "clean", help="remove checkpoint folders left by processes that have ended")
    clean.add_argument("disk_dir", help="the disk_dir the runs used")
    clean.add_argument("--dry-run", action="store_true", help="only list them")
    clean.set_defaults(run=_clean)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
