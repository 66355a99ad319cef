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

from pyadjoint.tape import stop_annotating

from . import rules
from .classify import BlockRecord, IndexedKeys, TapeIndex
from .errors import StorageError


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

    def __init__(self, tape, codec, adjoint=None, forward=None):
        self.tape = tape
        self.codec = codec
        self.adjoint = adjoint  # a FastAdjoint, or None for pyadjoint's block adjoints
        self.forward = forward  # a FastForward, or None for pyadjoint's recompute
        self.blocks: list[list] = []  # the operations of each step
        self.tangents = False
        self.second_order = False
        self.observer = None  # see observed()
        self.index = TapeIndex()
        self._hidden: dict[int, tuple] = {}  # id(block) -> ((Constant, BlockVariable), ...)
        self._latest: dict[int, Any] = {}  # id(live object) -> its newest BlockVariable

    # -- indexing --------------------------------------------------------------------------
    def index_step(self, n: int) -> None:
        """Classify the blocks of taped step ``n``; steps are indexed in order."""
        assert n == self.index.n_steps, (n, self.index.n_steps)
        records = []
        self.blocks.append(list(self.tape.timesteps[n]))
        for block in self.blocks[n]:
            rules.shed_assembler(block)
            hidden = tuple(
                (constant, self._latest[id(constant)])
                for constant in rules.hidden_constants(block)
                if id(constant) in self._latest
            )
            if hidden:
                self._hidden[id(block)] = hidden
            reads = (*block.get_dependencies(), *(bv for _, bv in hidden))
            writes = tuple(block.get_outputs())
            records.append(BlockRecord(reads, writes, rules.adjoint_reads(block, reads, writes)))
            for bv in writes:
                self._latest[id(bv.output)] = bv
            # Values pyadjoint does not checkpoint (a DirichletBC with a float value) are
            # immutable: their live object is their value for the life of the tape.
            self.index.kept.update(bv for bv in (*reads, *writes) if bv.checkpoint is None)
        self.index.add_step(records)

    def keep(self, keys: Iterable) -> None:
        """Hold ``keys`` (e.g. the functional) for the life of the tape."""
        self.index.kept.update(keys)

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
        for bv, value in values.items():
            if isinstance(bv, TangentKey):
                bv.bv.tlm_value = value
            else:
                bv.checkpoint = value

    def free(self, key) -> None:
        if isinstance(key, TangentKey):
            key.bv.tlm_value = None
        else:
            key.checkpoint = None

    def nbytes(self, values: Mapping) -> int:
        return sum(self.codec.nbytes(value) for value in values.values() if value is not None)

    # -- running ---------------------------------------------------------------------------
    def run_forward(self, n: int) -> None:
        blocks = self.blocks[n]
        for block, record in zip(blocks, self.index.records(n)):
            self._prepare(block, record.reads, n, "forward")
            for bv in record.writes:
                # Recompute into new objects: Firedrake assigns in place into an output's
                # existing value, which another variable's held value may share.
                bv.checkpoint = None
                bv.tlm_value = None
            if self.forward is None or self.tangents:
                block.recompute()
            else:
                self.forward.recompute(block)
            if self.tangents:
                block.evaluate_tlm(markings=True)
            if self.observer is not None:
                self.observer.block_done(block)
        if self.observer is not None:
            self.observer.step_done(n)

    def run_reverse(self, n: int, markings: bool) -> None:
        blocks = self.blocks[n]
        for block, record in zip(reversed(blocks), reversed(self.index.records(n))):
            if self.second_order:
                self._prepare(block, (*record.reads, *record.writes), n, "Hessian")
                block.evaluate_adj(markings=markings)
                block.evaluate_hessian(markings=markings)
            else:
                self._prepare(block, record.adjoint_reads, n, "adjoint")
                if self.adjoint is None:
                    block.evaluate_adj(markings=markings)
                else:
                    self.adjoint.evaluate_adj(block, markings)
        for block in blocks:
            block.reset_adjoint_state()
            for bv in block.get_outputs():
                bv.reset_variables(("tlm",) if bv.is_control else ("adjoint", "hessian", "tlm"))

    def _prepare(self, block, needed, n: int, phase: str) -> None:
        for bv in needed:
            # A step-invariant value (mesh, boundary condition, ...) is nobody's output:
            # its live object holds its value. Everything else must be held.
            if bv.checkpoint is None and not self.index.is_invariant(bv):
                raise self._missing(bv, n, phase)
        with stop_annotating():
            for constant, bv in self._hidden.get(id(block), ()):
                constant.assign(bv.saved_output)

    @staticmethod
    def _missing(bv, step: int, phase: str) -> StorageError:
        return StorageError(
            f"step {step}: the {phase} needs the value of {bv} "
            f"({type(bv.output).__name__}) but no value for it is held. This is a bug in "
            "fe_adjoint's data classification or a value changed outside the tape; please "
            "report it with the script"
        )
