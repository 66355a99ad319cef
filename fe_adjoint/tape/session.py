"""The fe_adjoint session of a tape: step boundaries, taping, replays and the adjoint.

One :class:`CheckpointingSession` per tape owns the step model, the storage levels and
the schedule driver; :mod:`fe_adjoint.tape.hooks` plugs it into pyadjoint. Every pass
(``Jhat(m)``, ``derivative``, ``tlm``, ``hessian``) first learns the pass's controls and
runs inside a :class:`~fe_adjoint.tape.reads.LiveState`, so the live objects a replay
sets (a time Constant, a boundary value) are what the script left afterwards.
"""

from __future__ import annotations

import itertools
import os
import time

from checkpoint_schedules import StorageType
from pyadjoint.adjfloat import AdjFloat
from pyadjoint.tape import TapePackageData, get_working_tape, stop_annotating

from ..checkpointing.driver import StepDriver
from ..checkpointing.pool import ValuePool
from ..checkpointing.step_model import PyadjointStepModel
from ..checkpointing.storage import RamStorage
from ..checkpointing.storage.disk import DiskStorage
from ..checkpointing.values import FiredrakeValueCodec
from ..errors import ConfigurationError, ScheduleError
from ..jobs.scratch import node_local_dir
from ..planning.auto import AutoSchedule, Probe, record_bytes
from ..report.progress import ProgressBars
from ..report.stats import RunStats
from ..reversible.driver import ReversibleDriver
from ..reversible.inverse import StepInverter
from ..reversible.schedule import ReversibleSchedule
from ..steps.adjoint import FastAdjoint
from ..steps.forward import FastForward
from ..steps.patterns import PatternCache
from ..steps.rules import forget_forms
from .coarse import fuse_step, refine_control_dependence
from .hooks import attach, session_of
from .reads import LiveState, ReadTracker
from .solver_reuse import SolverReuse

SIZED_STEPS = 3  # taped steps whose restart and adjoint data are sized for the costs


class CheckpointingSession(TapePackageData):
    """fe_adjoint's state on one tape: the step model, the storage levels and the driver."""

    def __init__(self, tape, schedule, disk_dir=None, comm=None, progress_every=None,
                 coarsen=True, progress=None):
        self.tape = tape
        pool = ValuePool()  # freed values, handed out again as new ones
        self.codec = FiredrakeValueCodec(pool)
        self.coarsen = coarsen
        self.patterns = PatternCache()  # derived forms, matrices and solvers by pattern
        self.reads = ReadTracker()
        self.model = PyadjointStepModel(
            tape, self.codec, self.reads, FastAdjoint(self.patterns) if coarsen else None,
            FastForward(self.patterns, pool) if coarsen else None, pool)
        self._variables = None  # every BlockVariable of the taped run, once taping ended
        self._live = None  # the LiveState of every pass, once taping ended
        # Absolute now: the script may change directory before the adjoint runs.
        self.disk_dir = os.path.abspath(os.fspath(disk_dir) if disk_dir is not None
                                        else node_local_dir())
        if comm is None:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
        self.comm = comm
        if disk_dir is not None and _uses_disk(schedule):
            self._make_level(StorageType.DISK).close()  # a bad directory fails now, not mid-run
        self._probe = None
        if isinstance(schedule, AutoSchedule):
            self._probe = self.driver = Probe(schedule, self.model, RunStats(),
                                              self._make_level, self.disk_dir, comm)
        elif isinstance(schedule, ReversibleSchedule):
            self.driver = ReversibleDriver(schedule, self.model, self._make_level, comm,
                                           StepInverter(self.model, self.patterns, schedule)
                                           if coarsen else None)
        else:
            self.driver = StepDriver(schedule, self.model, self._make_level, comm)
        self.driver.stats.progress_every = progress_every
        self.solver_reuse = SolverReuse(self.driver.stats.taped_solves)  # reuse_operators
        if progress is not False and comm.rank == 0:  # None: only on a terminal
            self.driver.stats.bars = ProgressBars(force=bool(progress))
        self._taped_at = None  # when the last step ended, while taping

    def _make_level(self, storage: StorageType):
        if storage == StorageType.RAM:
            return RamStorage(self.codec)
        return DiskStorage(self.codec, self.disk_dir, self.comm)

    # -- the interface pyadjoint's tape calls ------------------------------------------------
    def block_added(self, block) -> None:
        """Note what ``block`` reads, before it runs (blocks taped after the run are ignored)."""
        if self.driver.taping:
            self.reads.block_added(block)
            self.solver_reuse.block_added(block)

    def output_added(self, block, bv) -> bool:
        """Note the value ``block`` has just written to ``bv``; whether to save it now."""
        if not self.driver.taping:
            return True
        self.solver_reuse.output_added(block)
        return self.reads.output_added(block, bv)

    def end_timestep(self, timestep: int) -> None:
        """Close taped step ``timestep`` and open the next one."""
        with stop_annotating():
            self.solver_reuse.restore()
            self.reads.check_step()
            self._close_step(timestep, len(self.tape.timesteps[timestep]))
            if self._probe is not None:
                self._probe.taped_step(timestep)
                if self._probe.done:
                    self._start_planned()
            else:
                self._measure(timestep)
                self.driver.taped_step(timestep)
                self.model.release_superseded()
        self.tape.get_blocks().append_step()

    def _measure(self, n: int) -> None:
        """Time taped step ``n`` and, for the first few, size its data (the run's costs)."""
        stats, now = self.driver.stats, time.perf_counter()
        if self._taped_at is not None:  # the first step compiles: not timed
            stats.add_step_time("taped", now - self._taped_at)
        if n < SIZED_STEPS:
            record_bytes(self.model, n, stats)
        self._taped_at = time.perf_counter()

    def _start_planned(self) -> None:
        """Plan from the probed steps and hand them to a driver of the planned schedule."""
        probe, self._probe = self._probe, None
        self.driver = StepDriver(probe.decide().schedule(), self.model, self._make_level,
                                 self.comm)
        self.driver.stats = probe.stats
        self.driver.taped_steps(probe.steps)
        self.model.release_superseded()
        self._taped_at = time.perf_counter()

    def _close_step(self, n: int, count: int) -> None:
        self.model.index_step(n, self.tape.timesteps[n][:count])
        if self.coarsen:
            fuse_step(self.tape, n, count)

    def end_taping(self, functional=None) -> None:
        """Close the last taped step and finish the schedule's forward part.

        Blocks of the last step taped after ``functional`` (a BlockVariable) cannot change
        it: like the blocks taped after this call, they are not part of the run.
        """
        if not self.driver.taping:
            return
        with stop_annotating():
            self.solver_reuse.restore()
            self.reads.check_step()
            last = len(self.tape.timesteps) - 1
            blocks = self.tape.timesteps[last]
            count = next((i + 1 for i in range(len(blocks) - 1, -1, -1)
                          if functional in blocks[i].get_outputs()), len(blocks))
            self._close_step(last, count)
            # The last step's outputs are the run's results (the functional among them), and
            # so may be any scalar: a functional taped mid-run, a running time reduction.
            self.model.keep(bv for n, blocks in enumerate(self.model.blocks)
                            for block in blocks for bv in block.get_outputs()
                            if n == last or isinstance(bv.output, AdjFloat))
            self._variables = list({
                bv: None for blocks in self.model.blocks for block in blocks
                for bv in (*block.get_dependencies(), *block.get_outputs())})
            self._live = LiveState(self.reads.plans.values(), self.reads.inputs)  # final now
            if self._probe is not None:  # the run ended before the probe did
                self._probe.taped_step(last)
                self._probe.steps.pop()  # finish_taping hands the last step over itself
                self._start_planned()
            try:
                self.driver.finish_taping()
            finally:
                self.model.end_taping()
        inputs = self.reads.inputs
        self.driver.stats.captured_inputs = len(inputs.values)
        self.driver.stats.captured_bytes = inputs.nbytes(self.codec)

    def begin_pass(self, controls, given: bool = False, markings: bool = False) -> LiveState:
        """Start a pass with ``controls`` (see ``PyadjointStepModel.adopt_controls``).

        ``markings``: the pass evaluates only what depends on the controls; mark it
        operation by operation.
        """
        self.model.adopt_controls(controls, given)
        if markings:
            refine_control_dependence(self.model.blocks, self.model.controls)
        return self._live

    def _marked_controls(self):
        return [bv for bv in self._variables if bv.is_control]

    def recompute(self, functional=None) -> None:
        """Re-run the forward at the controls' current values."""
        self.end_taping(None if functional is None else functional.block_variable)
        if functional is not None:
            self.model.keep([functional.block_variable])
        with self.begin_pass(self._marked_controls(), given=True):
            self.driver.forward()

    def evaluate_adj(self, last_block=0, markings=False) -> None:
        """Run the adjoint, replaying the forward where the schedule needs it."""
        if last_block != 0:
            raise ConfigurationError(
                f"fe_adjoint evaluates the whole tape's adjoint; got last_block={last_block}"
            )
        if self.driver.taping:
            last = self.tape.timesteps[-1]
            seeded = (bv for block in last for bv in block.get_outputs()
                      if bv.adj_value is not None)
            self.end_taping(next(seeded, None))
        with self.begin_pass(self._marked_controls(), markings=markings):
            self.driver.reverse(markings)

    def evaluate_tlm(self, markings=False) -> None:
        """Propagate the controls' tangents through one forward sweep (see hooks)."""
        self.end_taping()
        seeded = [bv for bv in self._variables if bv.tlm_value is not None]
        # In second-order mode: what a Hessian action's reverse reads is what stays held.
        with stop_annotating(), self.begin_pass(seeded, markings=markings), \
                self.model.tangent_mode(second_order=True):
            self.driver.sweep()

    def evaluate_hessian(self, markings=False) -> None:
        """Run the schedule with tangents, then the adjoint and second-order adjoint."""
        self.end_taping()
        seeds = [bv for bv in self._variables if bv.hessian_value is not None]
        self.tape.reset_variables(("adjoint",))
        for bv in seeds:  # the functional: adjoint seed 1, as derivative() would use
            if not isinstance(bv.output, AdjFloat):
                raise ConfigurationError(
                    "fe_adjoint computes Hessians of scalar functionals (AdjFloat); "
                    f"got {type(bv.output).__name__}"
                )
            bv.adj_value = AdjFloat(1.0)
        # The controls are those the tangent-linear pass before this one was seeded at.
        with stop_annotating(), self.begin_pass(self.model.controls, markings=markings), \
                self.model.tangent_mode(second_order=True):
            self.driver.second_order_reverse(markings)

    # -- TapePackageData -------------------------------------------------------------------
    def clear(self) -> None:
        self.solver_reuse.restore()
        self.patterns.clear()
        self.reads.clear()
        forget_forms()
        self.driver.close()
        for level in self.driver.levels.values():
            if isinstance(level, DiskStorage):
                level.close()

    def reset(self) -> None:
        pass

    def checkpoint(self):
        return None

    def restore_from_checkpoint(self, state) -> None:
        pass

    def copy(self):
        return self

    def continue_checkpointing(self) -> None:
        pass

    def pause_checkpointing(self) -> None:
        pass


def _uses_disk(schedule) -> bool:
    if isinstance(schedule, AutoSchedule):
        return schedule.disk != 0
    try:
        return schedule.uses_storage_type(StorageType.DISK)
    except TypeError:  # DiskRevolve knows its disk snapshots only once iterated
        return True


def enable_checkpointing(
    schedule, disk_dir: str | os.PathLike | None = None, *, progress_every: int | None = None,
    progress: bool | None = None, coarsen: bool = True, comm=None, **planning,
) -> CheckpointingSession:
    """Checkpoint the working tape's adjoint with a checkpoint_schedules schedule.

    Parameters
    ----------
    schedule
        Any checkpoint_schedules schedule (``Revolve(N, s)``, ``MixedCheckpointSchedule``,
        ``SingleMemoryStorageSchedule()``, ...), not yet used; or ``"auto"``: the planner
        picks one once the first steps are taped, from the budgets and costs in
        ``planning`` (``steps=N, memory="4GiB", disk="100GiB"``; see
        :class:`~fe_adjoint.planning.auto.AutoSchedule`).
    disk_dir
        Where disk schedules write their files (a private folder is made inside it and
        removed afterwards); default: node-local scratch, :func:`fe_adjoint.node_local_dir`
        (``$SLURM_TMPDIR``, ``$TMPDIR``, the system's temporary directory).
    progress
        Progress bars of each pass (steps done, steps recomputed, checkpoint bytes held) on
        standard error, on rank 0 only: ``None`` draws them when it is a terminal, ``True``
        always, ``False`` never.
    progress_every
        Print a progress line every this many forward and adjoint steps.
    coarsen
        Put each time step on the tape as one block and evaluate its adjoint through
        forms derived once per pattern, reusing assembled operators and factorisations
        (see :mod:`fe_adjoint.tape.coarse`); ``False`` keeps pyadjoint's blocks and adjoints.
    comm
        The communicator the run's mesh is on (default ``COMM_WORLD``); for a member of an
        ``Ensemble``, ``ensemble.comm``. Its ranks take part in every pass together.

    Returns
    -------
    CheckpointingSession
        The session attached to the tape.

    Raises
    ------
    ConfigurationError
        If the tape already holds blocks, or ``disk_dir`` is missing or not writable.

    Examples
    --------
    >>> fe_adjoint.enable_checkpointing(Revolve(100, 10))    # doctest: +SKIP
    >>> for _ in fe_adjoint.steps(100):                      # doctest: +SKIP
    ...     solver.solve(); u_old.assign(u)
    """
    if isinstance(schedule, str) and schedule == "auto":
        schedule = AutoSchedule(**planning)
    elif planning:
        raise ConfigurationError(
            f"{', '.join(sorted(planning))}: planning options are for "
            "enable_checkpointing(\"auto\", ...); a given schedule takes none")
    tape = get_working_tape()
    if tape is None:
        raise ConfigurationError(
            "there is no working tape yet: import firedrake.adjoint (which makes one) or call "
            "set_working_tape(Tape()) before enable_checkpointing"
        )
    if len(tape.get_blocks()) > 0:
        raise ConfigurationError(
            "enable_checkpointing must be called before anything is taped; call it right "
            "after set_working_tape(Tape()) or continue_annotation()"
        )
    session = CheckpointingSession(tape, schedule, disk_dir, comm=comm,
                                   progress_every=progress_every, coarsen=coarsen,
                                   progress=progress)
    attach(tape, session)
    return session


def get_session(tape=None) -> CheckpointingSession:
    """The fe_adjoint session of ``tape`` (default: the working tape)."""
    tape = tape or get_working_tape()
    found = session_of(tape)
    if found is None:
        raise ConfigurationError(
            "fe_adjoint checkpointing is not enabled on this tape; call "
            "fe_adjoint.enable_checkpointing(schedule) before taping"
        )
    return found


def reuse_operators(*solvers) -> None:
    """Let the working tape's taped solves of ``solvers`` keep their operator when unchanged.

    A taped solve of one of these variational solvers keeps the assembled matrix and
    factorisation of its last solve when its Jacobian does not read the unknown and nothing
    it reads has changed (see :mod:`fe_adjoint.tape.solver_reuse`): a linear problem with a
    fixed operator is assembled and factorised once while taping. The results are the same.

    Examples
    --------
    >>> fe_adjoint.enable_checkpointing(Revolve(100, 10))    # doctest: +SKIP
    >>> fe_adjoint.reuse_operators(solver)                   # doctest: +SKIP
    """
    get_session().solver_reuse.add(solvers)


def steps(n: int | None = None):
    """Iterate over the time steps of the forward, marking each step on the tape.

    Parameters
    ----------
    n
        The number of steps; ``None`` for online schedules (leave the loop with ``break``).
    """
    current = get_session()
    max_n = current.driver.max_n
    if n is not None and max_n is not None and n != max_n:
        raise ScheduleError(
            f"steps({n}) was asked for but the schedule was built for {max_n} steps; "
            f"use the same number in both"
        )
    return current.tape.timestepper(iter(range(n)) if n is not None else itertools.count())
