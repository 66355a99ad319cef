"""The reversible schedule: an anchor every K steps, nothing else stored.

Its forward part is an ordinary checkpoint_schedules action sequence -- ``Forward(L, L + K)``
writing the restart data of step ``L`` -- so taping, replays and storage levels are the
common driver's. Its adjoint is not a sequence of actions: the
:class:`~fe_adjoint.reversible.driver.ReversibleDriver` runs each segment backwards from the
next anchor (see there).
"""

from __future__ import annotations

from checkpoint_schedules import CheckpointSchedule, EndForward, Forward, StorageType

from ..errors import ConfigurationError
from .declared import DeclaredInverse


class ReversibleSchedule(CheckpointSchedule):
    """Store the restart data of every ``every``-th step; reconstruct the others backwards.

    Parameters
    ----------
    max_n
        The number of steps.
    every
        Steps per segment (K): about N/K anchors are stored, plus the final state the tape
        keeps.
    storage
        Where anchors go: ``StorageType.RAM`` or ``StorageType.DISK``.
    tolerance
        The largest relative drift (reconstructed against stored state, at the start of a
        segment) accepted; a segment that drifts more is recomputed from its anchor and
        stored whole, with a warning.
    inverse
        A :class:`~fe_adjoint.reversible.declared.DeclaredInverse` of the step, for steps
        fe_adjoint cannot invert itself; None: derived from the taped operations. It may
        also be set as the attribute ``inverse`` once the Functions it names exist, before
        the first adjoint.
    """

    def __init__(self, max_n: int, every: int = 50, storage=StorageType.RAM,
                 tolerance: float = 1e-10, inverse=None):
        if max_n is None or max_n < 1 or every < 1:
            raise ConfigurationError(
                f"ReversibleSchedule needs max_n >= 1 and every >= 1; got {max_n}, {every}")
        if storage not in (StorageType.RAM, StorageType.DISK):
            raise ConfigurationError("ReversibleSchedule stores anchors in RAM or on DISK")
        super().__init__(max_n)
        self.every, self.storage, self.tolerance = every, storage, tolerance
        self.inverse = inverse

    @property
    def inverse(self):
        """The user's :class:`~fe_adjoint.reversible.declared.DeclaredInverse`, or None."""
        return self._inverse

    @inverse.setter
    def inverse(self, inverse) -> None:
        if inverse is not None and not isinstance(inverse, DeclaredInverse):
            raise ConfigurationError("ReversibleSchedule inverse= takes a DeclaredInverse")
        self._inverse = inverse

    @property
    def segments(self) -> list[tuple[int, int]]:
        """``(L, U)`` per segment: steps L..U-1, anchored at L.

        Step 0 is a segment of its own: it holds the script's set-up before the loop and
        restarts from the initial values alone, so each later segment's first step has
        stored restart data to measure the drift against.
        """
        n, k = self.max_n, self.every
        return [(0, 1)] + [(start, min(start + k, n)) for start in range(1, n, k)]

    def _iterator(self):
        for start, end in self.segments:
            self._n = end
            yield Forward(start, end, True, False, self.storage)
        yield EndForward()

    @property
    def is_exhausted(self) -> bool:
        return False  # the anchors serve any number of adjoints

    def uses_storage_type(self, storage_type) -> bool:
        return storage_type == self.storage
