"""The classification contract: which data of a taped run is held where, and for how long.

This is the one place the contract is written down; the driver, the step model and
the storage levels rely on it. No Firedrake import: a step is a list of
:class:`BlockRecord` (the keys a block's forward reads, the keys it writes, the keys
its adjoint reads), and keys are opaque.

What a key is
    A value of the run. On a pyadjoint tape: a ``BlockVariable`` written by a block of
    this tape (a *tape value*), or a captured input (:mod:`fe_adjoint.tape.reads`): a
    value read from outside the tape -- created before taping, changed outside it, or a
    dependency shared with another tape -- copied when the reading block was taped.
    The reads of a block are everything its forward reads: its dependencies *and* the
    objects it reads live (Constants of its forms, boundary values).

Step-invariant data
    Keys no block of this tape writes (captured inputs, the mesh), and keys the caller
    asks to keep (:meth:`TapeIndex.keep`: the functional and the last step's results,
    controls made by taped operations, boundary conditions, whose value is a reference).
    Held once, for the life of the tape; never stored in a checkpoint slot.

Restart data of step ``n``
    Keys written before step ``n`` and read at or after it: what restarts the forward
    at ``n``. Written to a slot when the schedule says ``Forward(n, ..., write_ics)``.

Adjoint data of step ``n``
    Keys the adjoints of step ``n``'s blocks read (derived from the first derivatives
    of each block's form, :func:`fe_adjoint.steps.rules.adjoint_reads`). Written when
    the schedule says ``write_adj_deps``.

Guarantee
    Before a block runs (forward, adjoint, tangent) every key it reads is held, or the
    step model raises a :class:`~fe_adjoint.errors.StorageError` naming the step and
    the key: no block ever falls back to a live value.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Key = Hashable


@dataclass(frozen=True)
class BlockRecord:
    """The keys one block reads, writes, and reads again in its adjoint."""

    reads: tuple[Key, ...]
    writes: tuple[Key, ...]
    adjoint_reads: tuple[Key, ...]


class TapeIndex:
    """Classifies the keys of a tape, one step at a time as the tape grows."""

    def __init__(self):
        self._steps: list[Sequence[BlockRecord]] = []
        self._producer: dict[Key, int] = {}
        self._last_read: dict[Key, int] = {}
        self._restart: list[set[Key]] | None = None
        self.kept: set[Key] = set()  # keys the caller wants held for the life of the tape

    @property
    def n_steps(self) -> int:
        """Steps indexed so far."""
        return len(self._steps)

    def add_step(self, records: Sequence[BlockRecord]) -> None:
        """Index the next step."""
        n = len(self._steps)
        self._steps.append(records)
        for record in records:
            for key in record.reads:
                self._last_read[key] = n
            for key in record.writes:
                self._producer.setdefault(key, n)
        self._restart = None

    def keep(self, keys) -> None:
        """Hold ``keys`` for the life of the tape (they become step-invariant)."""
        self.kept.update(keys)
        self._restart = None

    def last_read(self, key: Key) -> int:
        """The last step that reads ``key``; -1 if none does."""
        return self._last_read.get(key, -1)

    def is_invariant(self, key: Key) -> bool:
        """Whether ``key`` is held for the life of the tape."""
        return key not in self._producer or key in self.kept

    def records(self, n: int) -> Sequence[BlockRecord]:
        """The block records of step ``n``."""
        return self._steps[n]

    def early_keys(self, n0: int, k: int) -> set[Key]:
        """Keys read in step ``k`` that were produced before step ``n0``."""
        return {
            key
            for record in self._steps[k]
            for key in record.reads
            if not self.is_invariant(key) and self._producer[key] < n0
        }

    def restart_keys(self, n: int) -> set[Key]:
        """Keys produced before step ``n`` and read at or after it."""
        if self._restart is None:
            self._restart = [set() for _ in range(len(self._steps) + 1)]
            for key, first in self._producer.items():
                if key in self.kept:
                    continue
                for m in range(first + 1, self._last_read.get(key, first) + 1):
                    self._restart[m].add(key)
        return self._restart[n]

    def adjoint_keys(self, n: int) -> set[Key]:
        """Keys the adjoints of step ``n``'s blocks read."""
        return {
            key
            for record in self._steps[n]
            for key in record.adjoint_reads
            if not self.is_invariant(key)
        }

    def step_keys(self, n: int) -> set[Key]:
        """Keys step ``n`` reads or writes, step-invariant ones excepted."""
        return {
            key
            for record in self._steps[n]
            for key in (*record.reads, *record.writes)
            if not self.is_invariant(key)
        }


class IndexedKeys:
    """The key queries of :class:`~fe_adjoint.driver.StepModel`, answered by ``self.index``."""

    index: TapeIndex

    @property
    def n_steps(self) -> int:
        return self.index.n_steps

    def restart_keys(self, n: int) -> set[Key]:
        return self.index.restart_keys(n)

    def adjoint_keys(self, n: int) -> set[Key]:
        return self.index.adjoint_keys(n)

    def early_keys(self, n0: int, k: int) -> set[Key]:
        return self.index.early_keys(n0, k)

    def step_keys(self, n: int) -> set[Key]:
        return self.index.step_keys(n)


class StepModel(Protocol):
    """What the driver needs from a taped time-stepping model."""

    @property
    def n_steps(self) -> int:
        """Steps taped so far."""

    def restart_keys(self, n: int) -> set[Key]:
        """Keys produced before step ``n`` and read at or after it (complete tape)."""

    def adjoint_keys(self, n: int) -> set[Key]:
        """Keys the adjoint of step ``n`` reads."""

    def early_keys(self, n0: int, k: int) -> set[Key]:
        """Keys read in step ``k`` but produced before step ``n0`` (while taping)."""

    def step_keys(self, n: int) -> set[Key]:
        """Keys read or produced by step ``n`` that the model may free."""

    def values(self, keys: Iterable[Key], step: int) -> dict[Key, Any]:
        """Current values of ``keys``; raise StorageError naming ``step`` if one is missing."""

    def load(self, values: Mapping[Key, Any]) -> None:
        """Make ``values`` the current values of their keys."""

    def nbytes(self, values: Mapping[Key, Any]) -> int:
        """Bytes ``values`` occupy on this process."""

    def free(self, key: Key) -> None:
        """Drop the current value of ``key``."""

    def run_forward(self, n: int) -> int:
        """Recompute step ``n``; how many of its operations were recomputed.

        In tangent mode operations whose outputs are held are not recomputed (0: the
        whole step was held).
        """

    def run_reverse(self, n: int, markings: bool) -> None:
        """Evaluate the adjoint of step ``n``."""
