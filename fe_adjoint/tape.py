"""Installs fe_adjoint on a pyadjoint tape: step boundaries, taping, replays and the adjoint.

pyadjoint lets one object per tape drive checkpointed runs: the tape calls
``tape._checkpoint_manager.end_timestep``, ``.recompute`` and ``.evaluate_adj``,
and ``Tape.enable_checkpointing`` always builds pyadjoint's own
``CheckpointManager``. pyadjoint offers no public hook to supply another, so
this module -- and only this module -- sets that attribute, together with
``tape._eagerly_checkpoint_outputs`` (every value of a step is captured while it
is taped, so the driver can store exactly what each step needs). Everything
else goes through pyadjoint's documented hooks: a :class:`TapePackageData`
under ``tape._package_data["fe_adjoint"]`` frees checkpoint files when the tape
is cleared.
"""

from __future__ import annotations

import itertools
import os
import tempfile

from checkpoint_schedules import StorageType
from pyadjoint.adjfloat import AdjFloat
from pyadjoint.tape import TapePackageData, get_working_tape, stop_annotating

from .coarse import fuse_step, refine_control_dependence
from .driver import StepDriver
from .errors import ConfigurationError, ScheduleError
from .fast_adjoint import FastAdjoint
from .fast_forward import FastForward
from .patterns import PatternCache
from .report.stats import format_report
from .second_order import PACKAGE_KEY
from .second_order import install as install_second_order
from .step_model import PyadjointStepModel
from .storage import RamStorage
from .storage.disk import DiskStorage
from .values import FiredrakeValueCodec


class CheckpointingSession(TapePackageData):
    """fe_adjoint's state on one tape: the step model, the storage levels and the driver."""

    def __init__(self, tape, schedule, disk_dir=None, comm=None, progress_every=None,
                 coarsen=True):
        self.tape = tape
        self.codec = FiredrakeValueCodec()
        self.coarsen = coarsen
        self.patterns = PatternCache()  # derived forms, matrices and solvers by pattern
        self.model = PyadjointStepModel(
            tape, self.codec, FastAdjoint(self.patterns) if coarsen else None,
            FastForward(self.patterns) if coarsen else None)
        self.disk_dir = os.fspath(disk_dir) if disk_dir is not None else tempfile.gettempdir()
        if comm is None:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
        self.comm = comm
        if disk_dir is not None and _uses_disk(schedule):
            self._make_level(StorageType.DISK).close()  # a bad directory fails now, not mid-run
        self.driver = StepDriver(schedule, self.model, self._make_level)
        self.driver.stats.progress_every = progress_every

    def _make_level(self, storage: StorageType):
        if storage == StorageType.RAM:
            return RamStorage(self.codec)
        return DiskStorage(self.codec, self.disk_dir, self.comm)

    # -- the interface pyadjoint's tape calls ------------------------------------------------
    def end_timestep(self, timestep: int) -> None:
        """Close taped step ``timestep`` and open the next one."""
        with stop_annotating():
            self._close_step(timestep)
            self.driver.taped_step(timestep)
        self.tape.get_blocks().append_step()

    def _close_step(self, n: int) -> None:
        self.model.index_step(n)
        if self.coarsen:
            fuse_step(self.tape, n)

    def end_taping(self) -> None:
        """Close the last taped step and finish the schedule's forward part."""
        if self.driver.taping:
            with stop_annotating():
                last = len(self.tape.timesteps) - 1
                self._close_step(last)
                # The last step's outputs are the run's results (the functional among them).
                self.model.keep(bv for block in self.model.blocks[last]
                                for bv in block.get_outputs())
                self.driver.finish_taping()
            self._taped_blocks = len(self.tape.get_blocks())
        elif len(self.tape.get_blocks()) != self._taped_blocks:
            raise ScheduleError(
                f"{len(self.tape.get_blocks()) - self._taped_blocks} operations were taped after "
                "the functional was first evaluated or differentiated; call pause_annotation() "
                "right after the time loop"
            )

    def recompute(self, functional=None) -> None:
        """Re-run the forward at the controls' current values."""
        self.end_taping()
        if functional is not None:
            self.model.keep([functional.block_variable])
        self.driver.forward()

    def evaluate_adj(self, last_block=0, markings=False) -> None:
        """Run the adjoint, replaying the forward where the schedule needs it."""
        if last_block != 0:
            raise ConfigurationError(
                f"fe_adjoint evaluates the whole tape's adjoint; got last_block={last_block}"
            )
        self.end_taping()
        if markings and self.coarsen:
            refine_control_dependence(self.model.blocks)
        self.driver.reverse(markings)

    def evaluate_tlm(self, markings=False) -> None:
        """Propagate the controls' tangents through one forward sweep (see second_order)."""
        self.end_taping()
        with stop_annotating(), self.model.tangent_mode():
            self.driver.sweep()

    def evaluate_hessian(self, markings=False) -> None:
        """Run the schedule with tangents, then the adjoint and second-order adjoint."""
        self.end_taping()
        seeds = [bv for block in self.tape.get_blocks() for bv in block.get_outputs()
                 if bv.hessian_value is not None]
        self.tape.reset_variables(("adjoint",))
        for bv in seeds:  # the functional: adjoint seed 1, as derivative() would use
            if not isinstance(bv.output, AdjFloat):
                raise ConfigurationError(
                    "fe_adjoint computes Hessians of scalar functionals (AdjFloat); "
                    f"got {type(bv.output).__name__}"
                )
            bv.adj_value = AdjFloat(1.0)
        with stop_annotating(), self.model.tangent_mode(second_order=True):
            self.driver.forward()
            self.driver.reverse(markings)

    # -- TapePackageData -------------------------------------------------------------------
    def clear(self) -> None:
        self.patterns.clear()
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
    try:
        return schedule.uses_storage_type(StorageType.DISK)
    except TypeError:  # DiskRevolve knows its disk snapshots only once iterated
        return True


def enable_checkpointing(
    schedule, disk_dir: str | os.PathLike | None = None, *, progress_every: int | None = None,
    coarsen: bool = True,
) -> CheckpointingSession:
    """Checkpoint the working tape's adjoint with a checkpoint_schedules schedule.

    Parameters
    ----------
    schedule
        Any checkpoint_schedules schedule (``Revolve(N, s)``, ``MixedCheckpointSchedule``,
        ``SingleMemoryStorageSchedule()``, ...), not yet used.
    disk_dir
        Where disk schedules write their files (a private folder is made inside it and
        removed afterwards); default: the system's temporary directory.
    progress_every
        Print a progress line every this many forward and adjoint steps.
    coarsen
        Put each time step on the tape as one block and evaluate its adjoint through
        forms derived once per pattern, reusing assembled operators and factorisations
        (see :mod:`fe_adjoint.coarse`); ``False`` keeps pyadjoint's blocks and adjoints.

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
    tape = get_working_tape()
    if len(tape.get_blocks()) > 0:
        raise ConfigurationError(
            "enable_checkpointing must be called before anything is taped; call it right "
            "after set_working_tape(Tape()) or continue_annotation()"
        )
    if getattr(schedule, "is_running", False):
        raise ConfigurationError("the schedule has already been used; pass a new schedule")
    old = tape._package_data.pop(PACKAGE_KEY, None)
    if old is not None:
        old.clear()
    install_second_order()
    session = CheckpointingSession(tape, schedule, disk_dir, progress_every=progress_every,
                                   coarsen=coarsen)
    tape._package_data[PACKAGE_KEY] = session
    tape._checkpoint_manager = session
    tape._eagerly_checkpoint_outputs = True
    tape.latest_checkpoint = float("inf")
    tape.get_blocks().append_step()
    return session


def session(tape=None) -> CheckpointingSession:
    """The fe_adjoint session of ``tape`` (default: the working tape)."""
    tape = tape or get_working_tape()
    found = tape._package_data.get(PACKAGE_KEY)
    if found is None:
        raise ConfigurationError(
            "fe_adjoint checkpointing is not enabled on this tape; call "
            "fe_adjoint.enable_checkpointing(schedule) before taping"
        )
    return found


def steps(n: int | None = None):
    """Iterate over the time steps of the forward, marking each step on the tape.

    Parameters
    ----------
    n
        The number of steps; ``None`` for online schedules (leave the loop with ``break``).
    """
    current = session()
    max_n = current.driver.max_n
    if n is not None and max_n is not None and n != max_n:
        raise ScheduleError(
            f"steps({n}) was asked for but the schedule was built for {max_n} steps; "
            f"use the same number in both"
        )
    return current.tape.timestepper(iter(range(n)) if n is not None else itertools.count())


def stats() -> dict:
    """Counters of the working tape's checkpointing: steps run, peak bytes, time per phase."""
    return session().driver.stats.as_dict()


def report() -> str:
    """Print and return the checkpointing report of the working tape."""
    text = format_report(stats())
    print(text)
    return text
