"""Schedule driver: executes checkpoint_schedules actions on a step model; no Firedrake import.

It keeps restart data and adjoint data apart (see :mod:`.classify` for the contract).
Data in working memory (``StorageType.WORK``) is the model's own live
checkpoint values; data in ``RAM`` or on ``DISK`` lives in a
:class:`~fe_adjoint.checkpointing.storage.StorageLevel` slot keyed by step.

Examples
--------
``Forward(3, 5, True, False, StorageType.RAM)`` reads: write the restart data
of step 3 to RAM, then advance steps 3 and 4. ``Move(3, StorageType.RAM,
StorageType.WORK)`` loads that slot back into working memory and frees it;
``Reverse(5, 3, True)`` then needs the adjoint data of steps 4 and 3 in
working memory and frees it once used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from contextlib import contextmanager
from functools import singledispatchmethod

from checkpoint_schedules import (
    Copy,
    EndForward,
    EndReverse,
    Forward,
    Move,
    Reverse,
    SingleMemoryStorageSchedule,
    StorageType,
)

from ..errors import ScheduleError, StorageError
from ..report.stats import RunStats
from .classify import StepModel
from .memory import GarbageCollector
from .schedules import unused_copy
from .storage import DataKind, StorageLevel

Key = Hashable


class StepDriver:
    """Runs one schedule at a time over a step model, taping pass included.

    Parameters
    ----------
    schedule
        A checkpoint_schedules schedule that has not been iterated yet; a deep
        copy of it is kept to start every later run afresh.
    model
        The taped model.
    make_level
        Creates the storage level for ``StorageType.RAM`` or ``StorageType.DISK`` the
        first time the schedule uses it.
    comm
        The mpi4py communicator of the run, if any (the ranks collect garbage together).
    """

    def __init__(self, schedule, model: StepModel,
                 make_level: Callable[[StorageType], StorageLevel], comm=None):
        self._pristine = unused_copy(schedule)
        self._schedule = unused_copy(self._pristine)  # the caller's object is never iterated
        self.model = model
        self._make_level = make_level
        self.levels: dict[StorageType, StorageLevel] = {}
        self.stats = RunStats()
        self._collector = GarbageCollector(comm=comm)
        self._keeps_work_data = isinstance(schedule, SingleMemoryStorageSchedule)
        self._action = None
        self._pending = None  # an action read ahead of time, processed next
        self._taping = True
        self._open_restart: list[tuple[StorageLevel, int]] = []
        self._held: Counter = Counter()  # key -> number of work adjoint sets holding it
        self._held_nbytes: dict[Key, int] = {}  # key -> bytes of its held value
        self._held_total = 0  # the sum of _held_nbytes
        self._work_adjoint: dict[int, set[Key]] = {}
        self._frontier: set[Key] = set()
        self._unfreed: list | None = None  # keys to free later, while taped_steps runs
        self._state = "taping"  # taping | forward | reverse done | failed
        self._failure: tuple[str, str] | None = None  # (phase, what) of a pass that failed
        self._tangents_held = False  # every step's values and tangents held, by a sweep

    # -- public entry points -------------------------------------------------------------
    @property
    def taping(self) -> bool:
        """Whether the first forward is still being taped."""
        return self._taping

    @property
    def max_n(self) -> int | None:
        """The number of steps the schedule was built for (None for online schedules)."""
        return self._schedule.max_n

    def taped_step(self, k: int) -> None:
        """Process step ``k``, just taped by the user's script, under the current Forward."""
        if not self._taping:
            raise ScheduleError(
                "a time step was ended after the functional was evaluated or differentiated; "
                "tape the whole run before creating the ReducedFunctional"
            )
        with self._pass("taping"):
            action = self._forward_action_for(k)
            with self.stats.phase("forward"):
                self._store_taped_step(action, k)
        self.stats.forward_steps += 1
        self.stats.progress("taping", k)
        self._collector.step_done()

    def taped_steps(self, steps: Iterable[int]) -> None:
        """Process ``steps``, taped before this driver existed (a planned schedule's probe).

        Their values were all held while they were taped, so a later step may have read a
        value an earlier one produced without pyadjoint saving it again: nothing is freed
        until the last of them is processed.
        """
        self._unfreed = []
        try:
            for k in steps:
                self.taped_step(k)
        finally:
            keys, self._unfreed = self._unfreed, None
            self._release(keys)

    def finish_taping(self) -> None:
        """Process the last taped step and run the schedule up to EndForward."""
        if not self._taping:
            return
        n = self.model.n_steps
        self.taped_step(n - 1)
        self._taping = False
        self._open_restart.clear()
        with self._pass("taping"):
            max_n = self._schedule.max_n
            if max_n is None:
                self._schedule.finalize(n)
            elif n == 1 < max_n:
                raise ScheduleError(
                    f"no time step was marked but the schedule was built for {max_n} steps; "
                    f"loop over fe_adjoint.steps({max_n}) (or tape.timestepper) in the script"
                )
            elif max_n != n:
                raise ScheduleError(
                    f"the schedule was built for {max_n} steps but the script took {n}; "
                    f"build the schedule with max_n={n} or run {max_n} steps"
                )
            self._advance_to(EndForward)
        self.stats.end_pass()
        self._state = "forward"

    def forward(self) -> None:
        """Run the whole forward afresh under a new copy of the schedule."""
        self.finish_taping()
        with self._pass("forward"):
            self._reset_run()
            with self.stats.phase("forward"):
                self._advance_to(EndForward)
        self._state, self._failure = "forward", None

    def reverse(self, markings: bool) -> None:
        """Run the adjoint; replay the forward first when the schedule needs it."""
        self.finish_taping()
        self._ready_for_reverse()
        with self._pass("reverse"), self.stats.phase("reverse"):
            self._markings = markings
            self._run_adjoint()
        self._state = "reverse done"

    def _refuse_after_failed_forward(self) -> None:
        if self._state == "failed" and self._failure[0] == "forward":
            raise ScheduleError(
                f"the last evaluation of the functional failed ({self._failure[1]}); "
                "evaluate it again at a valid control, Jhat(m), before differentiating"
            )

    def _ready_for_reverse(self) -> None:
        """Run the forward again if the last pass failed or the schedule needs it."""
        if self._state == "failed":
            self._refuse_after_failed_forward()
            self.forward()  # the failed pass left nothing usable: start the schedule again
        elif self._state == "reverse done":
            self._pending = None if self._schedule.is_exhausted else next(self._schedule, None)
            if self._pending is None:
                self.forward()

    def _run_adjoint(self) -> None:
        self._advance_to(EndReverse)

    def sweep(self) -> None:
        """Run every step forward once from the start (a tangent-linear pass).

        The schedule is not consulted: a forward-in-time pass needs no checkpoints.
        Values the schedule holds in working memory stay held. Under a store-everything
        schedule each step's values and tangents (the model's adjoint keys, in its
        second-order mode) stay held too, so that a Hessian action's reverse that follows
        (:meth:`second_order_reverse`) needs no forward.
        """
        self.finish_taping()
        self._refuse_after_failed_forward()  # what is held may mix two runs' values
        model = self.model
        with self._pass("sweep"), self.stats.phase("forward"):
            self._replace_frontier(set())
            for n in range(model.n_steps):
                if model.run_forward(n):
                    self.stats.forward_steps += 1
                if self._keeps_work_data:
                    self._hold(n, model.adjoint_keys(n))
                self._advance_frontier(n)
                self.stats.progress("sweep", n)
                self._collector.step_done()
            self._replace_frontier(set())
        self._tangents_held = self._keeps_work_data

    def second_order_reverse(self, markings: bool) -> None:
        """The forward with tangents and the reverse of a Hessian action.

        Right after a sweep under a store-everything schedule, the reverse alone.
        """
        if not self._tangents_held:
            self.forward()
        self.reverse(markings)

    @contextmanager
    def _pass(self, phase: str):
        """Run one pass as a transaction: it completes, or the run is abandoned.

        After a failure (an exception, a Ctrl-C) nothing of the pass is trusted: every slot
        and held value is freed and the schedule restarts from its beginning, so the next
        pass recomputes what it needs -- or, where that cannot help (the taping or an
        evaluation of the functional failed), says what failed and what to do.
        """
        self._tangents_held = False  # a pass may change what is held: only a sweep sets it
        if self._failure is not None and self._failure[0] == "taping":
            raise ScheduleError(
                f"taping this run failed ({self._failure[1]}); tape the run again on a new "
                "tape (set_working_tape(Tape())) with a new schedule"
            )
        self._collector.pass_started()
        self.stats.begin_pass(phase, self.model.n_steps if phase != "taping" else self.max_n)
        try:
            yield
        except BaseException as exc:
            self.stats.end_pass()
            self._state, self._failure = "failed", (phase, f"{type(exc).__name__}: {exc}")
            self._pending = None
            try:
                self._reset_run()
            except Exception:  # noqa: S110 - the original failure is what the user must see
                pass
            raise
        if phase != "taping":  # a taping pass lasts from the first taped step to the last
            self.stats.end_pass()

    def close(self) -> None:
        """Free every slot and every held value."""
        for level in self.levels.values():
            level.clear()
        self._release_all()

    # -- taping ----------------------------------------------------------------------------
    def _forward_action_for(self, k: int) -> Forward:
        action = self._action
        while not (isinstance(action, Forward) and action.n0 <= k < action.n1):
            if isinstance(action, Forward) and k < action.n0:
                raise ScheduleError(f"step {k} was ended twice; end each time step once")
            action = self._next_action()
            if isinstance(action, EndForward):
                raise ScheduleError(
                    f"the schedule was built for {self._schedule.max_n} steps but the script "
                    f"took more; build the schedule for the number of steps the script runs"
                )
        return action

    def _store_taped_step(self, action: Forward, k: int) -> None:
        model = self.model
        level = self._level(action.storage)
        if action.write_ics and k == action.n0 and level is not None:
            level.write(k, DataKind.RESTART, model.values(model.early_keys(k, k), k))
            self._open_restart.append((level, k))
        for open_level, n0 in self._open_restart:
            if n0 < k and n0 in open_level:
                open_level.extend(n0, model.values(model.early_keys(n0, k), k))
        if action.write_adj_deps:
            self._write_adjoint(action.storage, k)
        self._step_ran(k)
        self._release(model.step_keys(k))

    def _step_ran(self, n: int) -> None:
        """Called after each forward step (taped or replayed), its values still held."""

    # -- actions ---------------------------------------------------------------------------
    def _advance_to(self, end_type) -> None:
        while True:
            action = self._next_action()
            self._process(action)
            if isinstance(action, end_type):
                return

    def _next_action(self):
        if self._pending is not None:
            self._action, self._pending = self._pending, None
            return self._action
        try:
            self._action = next(self._schedule)
        except StopIteration:
            raise ScheduleError(
                "the schedule is exhausted: it allows no further adjoint runs; "
                "use a schedule that permits repeated adjoints or re-evaluate the functional"
            ) from None
        return self._action

    @singledispatchmethod
    def _process(self, action) -> None:
        raise TypeError(
            f"fe_adjoint has no handler for the schedule action {action!r}; "
            "register one with StepDriver._process.register"
        )

    @_process.register
    def _forward(self, action: Forward) -> None:
        model = self.model
        n1 = min(action.n1, model.n_steps)
        level = self._level(action.storage)
        for n in range(action.n0, n1):
            if n == action.n0 and action.write_ics and level is not None:
                level.write(n, DataKind.RESTART, model.values(model.restart_keys(n), n))
                self._sample()
            with self.stats.timed_step("replay"):
                model.run_forward(n)
            self._step_ran(n)
            self.stats.forward_steps += 1
            if action.write_adj_deps:
                self._write_adjoint(action.storage, n)
            self._advance_frontier(n)
            self.stats.progress("forward", n)
            self._collector.step_done()
        if self._schedule.max_n is None and n1 >= model.n_steps:
            self._schedule.finalize(model.n_steps)

    @_process.register
    def _reverse(self, action: Reverse) -> None:
        for n in action:
            if n not in self._work_adjoint:
                raise ScheduleError(
                    f"the adjoint of step {n} was asked for but its adjoint data is not in "
                    "working memory; the schedule's actions are out of order"
                )
            with self.stats.timed_step("adjoint"):
                self.model.run_reverse(n, self._markings)
            self.stats.reverse_steps += 1
            if action.clear_adj_deps and not self._keeps_work_data:
                self._release(self._work_adjoint.pop(n), unhold=True)
            self.stats.progress("reverse", n)
            self._collector.step_done()

    @_process.register
    def _copy(self, action: Copy) -> None:
        self._transfer(action.n, action.from_storage, action.to_storage, move=False)

    @_process.register
    def _move(self, action: Move) -> None:
        self._transfer(action.n, action.from_storage, action.to_storage, move=True)

    @_process.register
    def _end_forward(self, action: EndForward) -> None:
        self._sample()
        self._replace_frontier(set())

    @_process.register
    def _end_reverse(self, action: EndReverse) -> None:
        self._sample()
        self._replace_frontier(set())

    # -- data movement ---------------------------------------------------------------------
    def _level(self, storage: StorageType) -> StorageLevel | None:
        if storage == StorageType.WORK:
            return None
        if storage not in self.levels:
            self.levels[storage] = self._make_level(storage)
        return self.levels[storage]

    def _write_adjoint(self, storage: StorageType, n: int) -> None:
        keys = self.model.adjoint_keys(n)
        level = self._level(storage)
        if level is None:
            self._hold(n, keys)
        else:
            level.write(n, DataKind.ADJOINT, self.model.values(keys, n))
        self._sample()

    def _transfer(self, n: int, source: StorageType, target: StorageType, move: bool) -> None:
        level = self._level(source)
        if level is None:
            raise ScheduleError(f"cannot copy step {n} out of working memory to {target.name}")
        if n not in level:
            raise StorageError(
                f"the schedule reads step {n} from {source.name} but nothing is stored there "
                "for that step; the schedule was already used or its actions are out of order"
            )
        slot = level.take(n) if move else level.read(n)
        kind = slot.kind
        destination = self._level(target)
        if destination is not None:
            destination.write(n, kind, slot.values)
            return
        self.model.load(slot.values)
        if kind is DataKind.ADJOINT:
            self._hold(n, set(slot.values))
        else:
            self._replace_frontier(set(slot.values))

    # -- working memory --------------------------------------------------------------------
    def _sample(self) -> None:
        """Record the bytes held now (for the peaks and the progress bar)."""
        self.stats.sample(self.levels, self._held_total)

    def _hold(self, n: int, keys: set[Key]) -> None:
        values = self.model.values(keys, n)
        self.model.load(values)  # make the held values self-contained
        previous = self._work_adjoint.pop(n, None)
        self._work_adjoint[n] = set(keys)
        for key in keys:
            if key not in self._held:
                nbytes = self._held_nbytes[key] = self.model.nbytes({key: values[key]})
                self._held_total += nbytes
        self._held.update(keys)
        if previous is not None:  # after the new set is counted: what both hold stays held
            self._release(previous, unhold=True)

    def _release(self, keys: Iterable[Key], unhold: bool = False) -> None:
        for key in keys:
            if unhold:
                self._held[key] -= 1
                if self._held[key] <= 0:
                    del self._held[key]
                    self._held_total -= self._held_nbytes.pop(key)
            if key not in self._held and key not in self._frontier:
                if self._unfreed is not None:
                    self._unfreed.append(key)
                else:
                    self.model.free(key)

    def _advance_frontier(self, n: int) -> None:
        """After step ``n``: keep the restart data of step ``n + 1``, free the rest."""
        model = self.model
        self._frontier |= model.step_keys(n)
        frontier = model.restart_keys(n + 1) if n + 1 < model.n_steps else set()
        model.load(model.values(frontier, n))  # self-contained before others are freed
        self._replace_frontier(frontier)

    def _replace_frontier(self, keys: set[Key]) -> None:
        """Make ``keys`` the forward state in working memory; free what leaves it."""
        previous, self._frontier = self._frontier, set(keys)
        self._release(previous)

    def _release_all(self) -> None:
        keys = set(self._held) | self._frontier
        self._held.clear()
        self._held_nbytes.clear()
        self._held_total = 0
        self._work_adjoint.clear()
        self._frontier = set()
        self._release(keys)

    def _reset_run(self) -> None:
        for level in self.levels.values():
            level.clear()
        self._release_all()
        self._schedule = unused_copy(self._pristine)
        self._action = None
