"""Tangent-linear and Hessian actions through the checkpoint schedule.

pyadjoint's ``compute_tlm`` and ``compute_hessian`` call ``Tape.evaluate_tlm``
and ``Tape.evaluate_hessian``, which walk every block of the tape and never
consult its checkpoint manager: under any schedule the values they read are
missing or stale. pyadjoint has no hook for these passes, so this module -- and
only this one -- replaces the two ``Tape`` methods with dispatchers: a tape
without an fe_adjoint session keeps pyadjoint's own behaviour.

Method
    *TLM*: one forward sweep from the start, recomputing every step and
    evaluating each block's tangent-linear model right after it; nothing is
    stored (a forward-in-time pass needs no checkpoints).

    *Hessian* (forward-over-reverse): a full run of the schedule in tangent
    mode. Every forward replay also propagates tangents, and tangents are stored
    and restored with the values they belong to (restart data and adjoint data
    alike); the reverse evaluates, block by block, the adjoint and then the
    second-order adjoint. So a Hessian action is right at any control and under
    any schedule, costs one schedule cycle with tangents, and needs no prior
    ``derivative()``.
"""

from __future__ import annotations

from pyadjoint.tape import Tape

PACKAGE_KEY = "fe_adjoint"  # where a tape keeps its fe_adjoint session

_pyadjoint_evaluate_tlm = Tape.evaluate_tlm
_pyadjoint_evaluate_hessian = Tape.evaluate_hessian


def _evaluate_tlm(tape, markings=False):
    session = tape._package_data.get(PACKAGE_KEY)
    if session is None:
        return _pyadjoint_evaluate_tlm(tape, markings=markings)
    return session.evaluate_tlm(markings)


def _evaluate_hessian(tape, markings=False):
    session = tape._package_data.get(PACKAGE_KEY)
    if session is None:
        return _pyadjoint_evaluate_hessian(tape, markings=markings)
    return session.evaluate_hessian(markings)


def install() -> None:
    """Route pyadjoint's TLM and Hessian passes through fe_adjoint sessions (idempotent)."""
    Tape.evaluate_tlm = _evaluate_tlm
    Tape.evaluate_hessian = _evaluate_hessian
