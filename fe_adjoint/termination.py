"""What fe_adjoint does when the process is told to end (SIGTERM).

A batch system ends a job at its time limit with SIGTERM (Slurm: to every process of the
job, then SIGKILL ``KillWait`` seconds later); ``scancel``, ``kill`` and ``mpiexec`` send it
too. Parts of fe_adjoint that hold something to tidy register a clean-up here: each
removes what it owns and returns a sentence for the job's log (or None). On SIGTERM they
run in order, one line naming them is written to standard error, and the process ends as
the signal would have ended it (or the handler installed before ours runs).

A process blocked inside a long C call (a PETSc solve, an MPI collective waiting for a rank
that has already gone) runs Python handlers only once that call returns, which may be
never: checkpoint folders are therefore also guarded by a watchdog process of their own
(:mod:`~fe_adjoint.checkpointing.storage.watchdog`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

_CLEANUPS: dict[str, Callable[[], str | None]] = {}
_PREVIOUS: dict[int, object] = {}  # signal -> the handler before ours


def on_termination(name: str, cleanup: Callable[[], str | None]) -> None:
    """Run ``cleanup`` on SIGTERM (replacing an earlier one of the same ``name``)."""
    _CLEANUPS[name] = cleanup
    _install(signal.SIGTERM)


def forget(name: str) -> None:
    """Stop running the clean-up registered as ``name``."""
    _CLEANUPS.pop(name, None)


def _install(signum: int) -> None:
    """Install the handler for ``signum`` once (handlers can only be set in the main thread)."""
    if signum in _PREVIOUS or threading.current_thread() is not threading.main_thread():
        return
    _PREVIOUS[signum] = signal.signal(signum, _on_signal)


def say(line: str) -> None:
    """Write ``line`` to the job's log: ``$FE_ADJOINT_LOG`` if set, else standard error.

    Under ``mpiexec`` a rank's standard error is a pipe to ``mpiexec``, which the same
    SIGTERM ends at once: what a rank writes there while it cleans up is lost. A job script
    names its log file in ``FE_ADJOINT_LOG`` (``demos/slurm/job.sh`` does) so the line lands.
    """
    path = os.environ.get("FE_ADJOINT_LOG")
    try:
        if path:
            with open(path, "a") as log:
                log.write(line + "\n")
        else:
            print(line, file=sys.stderr, flush=True)
    except OSError:  # nobody reads the log any more
        pass


def _rank() -> str:
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or mpi.COMM_WORLD.size == 1:
        return ""
    return f" (rank {mpi.COMM_WORLD.rank} of {mpi.COMM_WORLD.size})"


def _on_signal(signum, frame) -> None:
    notes = []
    for cleanup in list(_CLEANUPS.values()):
        try:
            note = cleanup()
        except Exception as exc:  # one failed clean-up must not stop the others
            note = f"a clean-up failed ({exc})"
        if note:
            notes.append(note)
    name = signal.Signals(signum).name
    say(f"fe_adjoint{_rank()}: {name} received (the batch system's time limit, scancel or "
        f"kill): {'; '.join(notes) or 'nothing to clean up'}; ending the process.")
    previous = _PREVIOUS.pop(signum, signal.SIG_DFL)
    signal.signal(signum, previous)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signum)  # what the signal would have done
