"""Reversible time stepping: the FWI demo's leapfrog run backwards, against Revolve.

The acoustic wave of ``demos/fwi.py`` (KMV, lumped mass, absorbing boundary, receivers on a
VertexOnlyMesh, PointMisfit) differentiated twice at equal storage: under
``ReversibleSchedule(N, K)`` (an anchor every K steps; the adjoint runs the steps
backwards from the next anchor) and under ``Revolve(N, N / K)``. It prints the drift per
segment, the bytes stored, the forward steps run and the times::

    python demos/wave_reversible.py [--cells 40] [--steps 1000] [--every 100] [--reflecting]

The demo's absorbing boundary term damps forwards and so amplifies round-off backwards:
on fine meshes (CFL number above ~0.1) a segment drifts past the tolerance and is
recomputed from its anchor, which the output shows.
"""

import argparse
import sys
import time

if __name__ == "__main__":
    DEMO_ARGV, sys.argv = sys.argv[1:], sys.argv[:1]  # the demo's options are not PETSc options

import numpy as np  # noqa: E402
from checkpoint_schedules import Revolve  # noqa: E402
from firedrake import COMM_WORLD, Function  # noqa: E402
from firedrake.adjoint import (  # noqa: E402
    Control,
    ReducedFunctional,
    Tape,
    continue_annotation,
    pause_annotation,
    set_working_tape,
)

import fe_adjoint  # noqa: E402

try:
    from demos import fwi
except ImportError:  # run as a script from demos/
    import fwi


def gradient(s, data, schedule):
    """Tape the misfit under ``schedule``; its gradient, the seconds and fe_adjoint's stats."""
    set_working_tape(Tape())
    continue_annotation()
    fe_adjoint.enable_checkpointing(schedule)
    start = time.perf_counter()
    c = Function(s.V).interpolate(1.5)
    J = fwi.misfit(s, c, data, steps=fe_adjoint.steps)
    pause_annotation()
    dJ = ReducedFunctional(J, Control(c)).derivative()
    return dJ.dat.data_ro.copy(), time.perf_counter() - start, fe_adjoint.stats()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100, help="K: steps per segment")
    parser.add_argument("--reflecting", action="store_true",
                        help="no absorbing boundary term (it grows round-off backwards)")
    args = parser.parse_args(DEMO_ARGV if argv is None else argv)
    s = fwi.survey(args.cells, args.steps, receivers=20, absorbing=not args.reflecting)
    data = fwi.records(s, fwi.true_speed(s.V))
    snapshots = -(-args.steps // args.every)
    runs = {"reversible": fe_adjoint.ReversibleSchedule(args.steps, args.every),
            "revolve": Revolve(args.steps, snapshots)}
    results = {name: gradient(s, data, schedule) for name, schedule in runs.items()}
    info = results["reversible"][2]["reversible"]
    say = print if COMM_WORLD.rank == 0 else (lambda *a, **k: None)
    say(f"{args.steps} steps, {args.cells}x{args.cells} cells, K = {args.every}")
    for segment, drift in enumerate(info["drift"], start=1):
        say(f"  segment {segment:3d}: drift {drift:.2e} (relative, reconstructed vs anchor)")
    say(f"  fallback segments: {info['fallback_segments']}")
    for name, (_, seconds, stats) in results.items():
        stored = sum(stats["peak_bytes"]["RAM"].values())
        say(f"{name:>10}: {seconds:6.2f} s (forward + gradient), {stats['forward_steps']} "
            f"forward steps, {stored / 1e6:.2f} MB stored at most")
    difference = np.linalg.norm(results["reversible"][0] - results["revolve"][0]) \
        / np.linalg.norm(results["revolve"][0])
    say(f"gradient difference reversible vs revolve: {difference:.1e}")
    return difference, info


if __name__ == "__main__":
    main()
