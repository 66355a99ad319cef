"""A pyadjoint tape seen as a sequence of steps: the :class:`~fe_adjoint.driver.StepModel`.

Keys are pyadjoint ``BlockVariable`` objects, whose value is their
``checkpoint``, and, in tangent mode, :class:`TangentKey` objects, whose value
is the variable's ``tlm_value``: tangents are stored and restored with the
values they belong to. The model never lets a block read a live value silently: before
a block is recomputed or its adjoint evaluated, every value it needs must be
held, or a :class:`~fe_adjoint.errors.StorageError` names the step and the
variable. Constants read live by Firedrake blocks (see :mod:`fe_adjoint.rules`)
are set to their taped values first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyadjoint.block_variable import BlockVariable

from ..errors import ConfigurationError, StorageError
from ..steps import rules
from ..steps.hessian import evaluate_hessian
from .classify import BlockRecord, IndexedKeys, TapeIndex


@dataclass(frozen=True)
class TangentKey:
    """The tangent-linear value of a BlockVariable, stored beside its value."""

    bv: Any


class PyadjointStepModel(IndexedKeys):
    """Runs the steps of a pyadjoint tape and classifies their data.

    In tangent mode (:meth:`tangent_mode`) every recomputed block also evaluates
    its tangent-linear model and tangents travel with the values; with
    ``second_order`` the reverse of a block also evaluates its Hessian component.
    """

    def __init__(self, tape, codec, reads, adjoint=None, forward=None, pool=None):
        self.tape = tape
        self.codec = codec
        self.pool = pool  # a ValuePool for the values freed, or None
        self.reads = reads  # the tape's ReadTracker: each block's ReadPlan, captured inputs
        self.adjoint = adjoint  # a FastAdjoint, or None for pyadjoint's block adjoints
        self.forward = forward  # a FastForward, or None for pyadjoint's recompute
        self.blocks: list[list] = []  # the operations of each step
        self.tangents = False
        self.second_order = False
        self.observer = None  # see observed()
        self.index = TapeIndex()
        self.controls: set = set()  # the controls of the current pass: never recomputed
        self._given: dict = {}  # control -> the last value Jhat(m) gave it that was accepted
        self.taping = True
        self._deferred: set = set()  # values released while taping, still their object's own

    # -- indexing --------------------------------------------------------------------------
    def index_step(self, n: int, blocks) -> None:
        """Classify ``blocks``, the operations of taped step ``n``; steps are indexed in order.

        A block that never got an output (a solve that raised, which the script caught and
        ran again) wrote nothing and reads nothing anybody needs: it is not part of the run.
        """
        assert n == self.index.n_steps, (n, self.index.n_steps)
        records = []
        self.blocks.append([block for block in blocks if block.get_outputs()])
        for block in self.blocks[n]:
            rules.shed_assembler(block)
            plan = self.reads.plans[id(block)]
            writes = tuple(block.get_outputs())
            records.append(BlockRecord(plan.reads, writes,
                                       rules.adjoint_reads(block, plan.reads, writes)))
            # A boundary condition's value is a reference to its value's variable, or (a
            # float) its live object: it is held for the life of the tape.
            self.index.kept.update(bv for bv in writes if _structural(bv))
        self.index.add_step(records)

    def keep(self, keys: Iterable) -> None:
        """Hold ``keys`` (e.g. the functional) for the life of the tape."""
        self.index.keep(keys)

    @contextmanager
    def tangent_mode(self, second_order: bool = False):
        """Carry tangent-linear values (and, if asked, evaluate Hessians) inside the block."""
        self.tangents, self.second_order = True, second_order
        try:
            yield
        finally:
            self.tangents = self.second_order = False

    @contextmanager
    def observed(self, observer):
        """Let ``observer`` follow the recompute.

        ``observer.block_done(block)`` is called after every recomputed block and
        ``observer.step_done(n)`` after every recomputed step.
        """
        self.observer = observer
        try:
            yield
        finally:
            self.observer = None

    def _with_tangents(self, keys: set) -> set:
        return keys | {TangentKey(bv) for bv in keys} if self.tangents else keys

    def restart_keys(self, n):
        return self._with_tangents(self.index.restart_keys(n))

    def adjoint_keys(self, n):
        # A Hessian component reads more than the adjoint does: keep the whole step.
        keys = self.index.step_keys(n) if self.second_order else self.index.adjoint_keys(n)
        return self._with_tangents(keys)

    def step_keys(self, n):
        return self._with_tangents(self.index.step_keys(n))

    # -- values ----------------------------------------------------------------------------
    def values(self, keys: Iterable, step: int) -> dict:
        """Self-contained values of ``keys``.

        Firedrake checkpoints ``u_old.assign(u)`` by delegating to ``u``'s value; such a
        value is resolved here, while ``u``'s is still held, into a Function of its own.
        """
        from firedrake.adjoint_utils.checkpointing import CheckpointBase

        values = {}
        for bv in keys:
            if isinstance(bv, TangentKey):
                values[bv] = bv.bv.tlm_value
                continue
            value = bv.checkpoint
            if value is None:
                raise self._missing(bv, step, "store")
            if isinstance(value, CheckpointBase):
                target = getattr(value, "other", None)
                if target is not None and target.checkpoint is None \
                        and not self.index.is_invariant(target):
                    raise self._missing(target, step, "store")
                value = bv.saved_output
            values[bv] = value
        return values

    def load(self, values: Mapping) -> None:
        self._deferred.difference_update(values)
        for bv, value in values.items():
            if isinstance(bv, TangentKey):
                bv.bv.tlm_value = value
            else:
                bv.checkpoint = value

    def free(self, key) -> None:
        if self.index.is_invariant(key.bv if isinstance(key, TangentKey) else key):
            return  # held for the life of the tape (it may have become so after taping)
        if isinstance(key, TangentKey):
            key.bv.tlm_value = None
        elif self.taping and _current(key):
            # pyadjoint re-saves a freed dependency from its live object when it is next
            # read; Firedrake tapes an assembly into it after the fact, so its live object
            # may by then hold the result. Keep the value until the object moves on.
            self._deferred.add(key)
        else:
            if self.pool is not None:
                self.pool.give(key.checkpoint)
            key.checkpoint = None

    def release_superseded(self) -> None:
        """While taping: free the released values whose objects have since moved on.

        Only the variables superseded since the last call are looked at: a value whose
        object is never written again (a float, a Function made once) stays deferred
        without costing every later step a look.
        """
        for key in self.reads.take_superseded():
            if key in self._deferred:
                self._deferred.discard(key)
                key.checkpoint = None

    def end_taping(self) -> None:
        """Taping is over: nothing is re-saved from live objects any more."""
        self.taping = False
        for key in self._deferred:
            if not self.index.is_invariant(key):
                key.checkpoint = None
        self._deferred.clear()

    def nbytes(self, values: Mapping) -> int:
        return sum(self.codec.nbytes(value) for value in values.values() if value is not None)

    # -- running ---------------------------------------------------------------------------
    def run_forward(self, n: int) -> int:
        recomputed = sum(self.run_block(n, block, record)
                         for block, record in zip(self.blocks[n], self.index.records(n)))
        if self.observer is not None:
            self.observer.step_done(n)
        return recomputed

    def run_block(self, n: int, block, record) -> bool:
        """Recompute one operation of step ``n`` from held values, into new values.

        Returns whether it was recomputed.

        In tangent mode, an operation whose outputs are all held is not recomputed: held
        values are the current run's (a run at new controls frees them all first), so a
        tangent pass over a stored run only adds the tangents.
        """
        if self._makes_control(record):
            return False  # a control's value is the one given (as pyadjoint's Block.recompute)
        self._prepare(block, record.reads, n, "forward")
        held = self.tangents and all(bv.checkpoint is not None for bv in record.writes)
        for bv in record.writes:
            bv.tlm_value = None
            if not held:
                # Recompute into new objects: Firedrake assigns in place into an output's
                # existing value, which another variable's held value may share.
                bv.checkpoint = None
        if not held:
            if self.forward is None:
                block.recompute()
            else:
                self.forward.recompute(block)
        if self.tangents:
            if self.forward is None:
                block.evaluate_tlm(markings=True)
            else:
                self.forward.evaluate_tlm(block)
        if self.observer is not None:
            self.observer.block_done(block)
        return not held

    def run_reverse(self, n: int, markings: bool) -> None:
        blocks = self.blocks[n]
        for block, record in zip(reversed(blocks), reversed(self.index.records(n))):
            if self._makes_control(record):
                continue  # nothing upstream of a control enters its derivative
            if self.second_order:
                self._prepare(block, (*record.reads, *record.writes), n, "Hessian")
                if self.adjoint is None:
                    evaluate_hessian(None, block, markings)
                else:
                    self.adjoint.evaluate_hessian(block, markings)
            else:
                self._prepare(block, record.adjoint_reads, n, "adjoint")
                if self.adjoint is None:
                    block.evaluate_adj(markings=markings)
                else:
                    self.adjoint.evaluate_adj(block, markings)
        for block in blocks:
            block.reset_adjoint_state()
            for bv in block.get_outputs():
                if bv not in self.controls:
                    bv.reset_variables(("adjoint", "hessian", "tlm"))

    def _makes_control(self, record) -> bool:
        return bool(self.controls) and any(bv in self.controls for bv in record.writes)

    def _prepare(self, block, needed, n: int, phase: str) -> None:
        for key in needed:
            # Step-invariant values (captured inputs, the mesh, boundary conditions) are held
            # for the life of the tape. Everything else must be held now.
            if not self.index.is_invariant(key) and key.checkpoint is None:
                raise self._missing(key, n, phase)
        self.reads.plans[id(block)].load(self.reads.inputs, _held_value)

    def adopt_controls(self, controls, given: bool) -> None:
        """Make ``controls`` (BlockVariables) the controls of the passes that follow.

        ``given``: their checkpoints hold values just given by the user (``Jhat(m)``);
        otherwise a control keeps the value it had when it was taped. A control made by a
        taped operation is held for the life of the tape and its operation is not replayed.
        """
        if given:
            self._check_given(controls)
        self.controls = set(controls)
        for bv in self.controls:
            if bv not in self.reads.produced:
                if given:
                    self.reads.inputs.set_control(bv, bv.checkpoint)
                continue
            if bv._checkpoint is None:
                if not self.reads.still_holds(bv):
                    raise StorageError(
                        f"the control {bv} ({type(bv.output).__name__}) was made by a taped "
                        "operation and changed afterwards, so its taped value is lost; call "
                        "Jhat(value) before differentiating, or make the control before "
                        "taping starts"
                    )
                bv.save_output()
            if bv not in self.index.kept:
                self.index.keep([bv])

    def _check_given(self, controls) -> None:
        """Refuse bad control values before anything runs; the controls keep their values."""
        from ..tape.inputs import control_value_problem, copy_of

        problems = [(i, problem) for i, bv in enumerate(controls)
                    if (problem := control_value_problem(bv)) is not None]
        if not problems:
            self._given = {bv: bv.checkpoint for bv in controls}
            return
        for bv in controls:
            previous = self._given.get(bv)
            if previous is None and bv not in self.reads.produced:
                previous = self.reads.inputs.values.get(bv)
            if previous is None and self.reads.still_holds(bv):
                previous = copy_of(bv.output)
            bv._checkpoint = previous
        i, problem = problems[0]
        raise ConfigurationError(
            f"Jhat was given a bad value for control {i}: {problem}. Nothing was run and the "
            "controls keep their previous values; pass a finite value in the control's "
            "function space"
        )

    @staticmethod
    def _missing(bv, step: int, phase: str) -> StorageError:
        return StorageError(
            f"step {step}: the {phase} needs the value of {bv} "
            f"({type(bv.output).__name__}) but no value for it is held. This is a bug in "
            "fe_adjoint's data classification; please report it with the script"
        )


def _held_value(bv):
    """The held value of tape variable ``bv``, or None."""
    return bv.saved_output if bv.checkpoint is not None else None


def _structural(bv) -> bool:
    """Whether a written variable's checkpoint is no value of its own (a boundary condition)."""
    return bv.checkpoint is None or isinstance(bv.checkpoint, BlockVariable)


def _current(bv) -> bool:
    """Whether ``bv`` is its object's newest BlockVariable."""
    return getattr(bv.output, "block_variable", None) is bv
