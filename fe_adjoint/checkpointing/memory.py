"""Returns the memory of freed checkpoint values to the system while a run goes on.

Firedrake objects live in reference cycles, so a value the driver frees is only
released when Python's cyclic collector runs; left to its own counters, the
collector runs its full pass rarely and dead vectors pile up with the number of
steps (seen: +50 KB per step under Revolve on heat, 64 x 64). A
:class:`GarbageCollector` runs ``gc.collect()`` once the steps since the last
collection, counted within passes, took ``patience`` times as long as that collection:
collection costs at most ~1/patience of the run, and garbage never outlives more than that
much work. Until the first collection is measured its cost is guessed from what one takes in
a Firedrake process (0.1-0.3 s; 0.23 s in the taping benchmark's processes): a guess far
below that made a 1-second forward pay a fifth of its time for one early collection.
Under MPI the ranks agree on each collection: freeing PETSc objects on some ranks only
leaves PETSc's collective garbage clean-up waiting on the others (seen: a hang in
``PetscFinalize``).
"""

from __future__ import annotations

import gc
import time


class GarbageCollector:
    """Collects cyclic garbage at a bounded share of the run time."""

    def __init__(self, patience: float = 25.0, first_guess: float = 0.2, comm=None):
        self.patience = patience
        self._comm = comm if comm is not None and comm.size > 1 else None
        self._cost = first_guess  # seconds a collection takes; measured from the first one
        self._since = time.perf_counter()

    def pass_started(self) -> None:
        """Call when a pass starts: the time between passes (the script's) is not work."""
        self._since = time.perf_counter()

    def step_done(self) -> None:
        """Call after each forward or adjoint step."""
        now = time.perf_counter()
        due = now - self._since >= self.patience * self._cost
        if self._comm is not None:
            from mpi4py import MPI

            due = self._comm.allreduce(due, op=MPI.LOR)
        if due:
            gc.collect()
            self._since = time.perf_counter()
            self._cost = self._since - now
