"""Every point where fe_adjoint plugs into pyadjoint -- this module and no other.

pyadjoint lets one object per tape drive checkpointed runs: the tape calls
``tape._checkpoint_manager.end_timestep``, ``.recompute`` and ``.evaluate_adj``,
but ``Tape.enable_checkpointing`` always builds pyadjoint's own
``CheckpointManager`` and there is no public hook to supply another. So
:func:`attach` sets that attribute (and ``_eagerly_checkpoint_outputs``: every value
is captured as it is taped, but for a copy, which shares its source's) and files the
session under ``tape._package_data["fe_adjoint"]`` (pyadjoint's documented hook for
package data, which also tells the session when the tape is cleared).

Four methods pyadjoint offers no hook for are replaced, once, by dispatchers that
keep pyadjoint's behaviour on a tape without a session:

* ``Tape.add_block`` and ``Block.add_output``: the session sees every block as it is
  taped and every value it writes, to write down what it reads and check that what it
  reads has not changed behind the tape (:mod:`fe_adjoint.tape.reads`); a copy
  (``u_old.assign(u)``) gets its source's held value instead of pyadjoint's eager copy;
* ``Tape.evaluate_tlm`` and ``Tape.evaluate_hessian``: pyadjoint's walk every block and
  never consult the checkpoint manager, so under a schedule they would read missing or
  stale values; the session runs them through the schedule.
"""

from __future__ import annotations

from pyadjoint.block import Block
from pyadjoint.tape import Tape, get_working_tape

PACKAGE_KEY = "fe_adjoint"  # where a tape keeps its fe_adjoint session

_pyadjoint_add_block = Tape.add_block
_pyadjoint_add_output = Block.add_output
_pyadjoint_evaluate_tlm = Tape.evaluate_tlm
_pyadjoint_evaluate_hessian = Tape.evaluate_hessian


def session_of(tape):
    """The fe_adjoint session of ``tape``, or None."""
    return tape._package_data.get(PACKAGE_KEY)


def _add_block(tape, block):
    session = session_of(tape)
    if session is not None:
        session.block_added(block)
    return _pyadjoint_add_block(tape, block)


def _add_output(block, obj):
    # Before pyadjoint's: adding an output may tape further blocks that read it (Firedrake
    # merges a written sub-function into its parent), and they must see it as this tape's.
    tape = get_working_tape()
    session = session_of(tape)
    if session is None or session.output_added(block, obj):
        return _pyadjoint_add_output(block, obj)
    tape._eagerly_checkpoint_outputs = False  # the session gave it its source's value
    try:
        _pyadjoint_add_output(block, obj)
    finally:
        tape._eagerly_checkpoint_outputs = True


def _evaluate_tlm(tape, markings=False):
    session = session_of(tape)
    if session is None:
        return _pyadjoint_evaluate_tlm(tape, markings=markings)
    return session.evaluate_tlm(markings)


def _evaluate_hessian(tape, markings=False):
    session = session_of(tape)
    if session is None:
        return _pyadjoint_evaluate_hessian(tape, markings=markings)
    return session.evaluate_hessian(markings)


def _install() -> None:
    """Replace the four methods by their dispatchers (idempotent)."""
    Tape.add_block = _add_block
    Block.add_output = _add_output
    Tape.evaluate_tlm = _evaluate_tlm
    Tape.evaluate_hessian = _evaluate_hessian


def attach(tape, session) -> None:
    """Make ``session`` drive ``tape``'s checkpointing, replacing any earlier session."""
    _install()
    old = tape._package_data.pop(PACKAGE_KEY, None)
    if old is not None:
        old.clear()
    tape._package_data[PACKAGE_KEY] = session
    tape._checkpoint_manager = session
    tape._eagerly_checkpoint_outputs = True
    tape.latest_checkpoint = float("inf")
    tape.get_blocks().append_step()
