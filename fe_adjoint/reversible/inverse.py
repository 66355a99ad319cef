"""Running a time step backwards: the restart data of step ``n`` from that of step ``n + 1``.

A step is a sequence of operations. Backwards, with the values after the step known (the
restart data of step ``n + 1``, and what the tape holds for its whole life):

* an operation whose inputs are all known runs forwards (a source ``f.assign(r(t) * q)``);
* a copy ``u_old.assign(u)`` with its output known gives its source, and a pointwise affine
  assignment ``u.assign(u + dt * v)`` its one unknown input (:mod:`.assign_inverse`);
* an explicit linear solve with its output known and exactly one input unknown gives that
  input (:mod:`.solve_inverse`);
* a value of step ``n - 1`` that step ``n - 1`` copied into one now known (the solve's
  initial guess ``u_(n+1)`` of step ``n - 1``, copied into ``u_n``) is that copy's source.

An initial guess the step's explicit solve reads but nothing recovers is stood in for by
the solve's result (it changes that result by round-off only); it is not taken as known
when step ``n - 1`` is run backwards. A :class:`~.declared.DeclaredInverse` of the user
gives the states before the step first. These rules are applied until nothing changes
(:func:`plan_backwards`); a value still unknown then -- step ``n``'s restart data, or a
value its adjoint reads -- makes the step irreversible, and the refusal names the operation
that reads it. Plans depend only on a step's operations and are made once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError
from ..steps.patterns import copied_function
from ..steps.rules import block_kind
from .assign_inverse import affine_input, run_assign_backwards
from .solve_inverse import RUNS_BACKWARDS, SolveInverse, check_solve, solve_inputs


@dataclass(frozen=True)
class Action:
    """One backward rule.

    ``forward`` runs ``block``; ``copy``, ``affine`` and ``solve`` give ``target``;
    ``declared`` gives the keys ``target`` from the values of ``source`` (``block`` is the
    DeclaredInverse).
    """

    kind: str
    n: int
    block: object
    record: object = None
    target: object = None
    source: object = None


def plan_backwards(model, n: int, optional=frozenset(), declared=None) -> list[Action]:
    """The actions that give every value of step ``n`` (see the module).

    ``optional`` keys are computed too where the rules reach them (for comparisons) and
    dropped where they do not. ``declared``: the user's inverse, or None.
    """
    index = model.index
    known = {k for k in _keys_of(model, n) if index.is_invariant(k) and k not in optional}
    if n + 1 < model.n_steps:  # less the initial guesses step n + 1 may have stood in for
        later = list(zip(model.blocks[n + 1], index.records(n + 1)))
        known |= index.restart_keys(n + 1) - {key for *_, key in _initial_guesses(later)}
    needed = index.restart_keys(n) | index.step_keys(n) | set(optional)
    records = list(zip(model.blocks[n], index.records(n)))
    previous = list(zip(model.blocks[n - 1], index.records(n - 1))) if n > 0 else []
    actions: list[Action] = []
    if declared is not None:
        before, given = declared.keys(model, n, known)
        actions.append(Action("declared", n, declared, target=before, source=given))
        known |= set(before) - {None}
    while True:
        found = _forward_actions(n, records, known) + _backward_actions(n, records, known)
        found += [a for a in _backward_actions(n - 1, previous, known, copies_only=True)
                  if a.target in needed]
        if not found:
            break
        for action in found:
            known |= set(action.record.writes) if action.kind == "forward" else {action.target}
        actions += found
    for block, record, guess in _initial_guesses(records):
        if guess in needed - known - set(optional) and record.writes[0] in known:
            actions.append(Action("copy", n, block, record, guess, record.writes[0]))
            known.add(guess)
    missing = [k for k in needed - known if k not in optional]
    if missing:
        raise _irreversible(n, records, missing[0])
    return actions


def _initial_guesses(records) -> list:
    """``(block, record, key)`` per value read only as an explicit solve's initial guess.

    That is the solve's output's old value, which changes an explicit solve's result by
    round-off only (its replay ignores it): the solve's result stands in for it.
    """
    found, other_reads = [], set()
    for block, record in records:
        func = getattr(block, "func", None) if block_kind(type(block)) == "solve" else None
        for key in record.reads:
            if func is not None and getattr(key, "output", None) is func and _explicit(block):
                found.append((block, record, key))
            else:
                other_reads.add(key)
    return [entry for entry in found if entry[2] not in other_reads]


def _explicit(block) -> bool:
    try:
        check_solve(block)
    except ConfigurationError:
        return False
    return True


def _keys_of(model, n: int) -> set:
    return {k for record in model.index.records(n) for k in (*record.reads, *record.writes)}


def _forward_actions(n, records, known) -> list[Action]:
    found = []
    for block, record in records:
        if not set(record.writes) <= known and set(record.reads) <= known:
            found.append(Action("forward", n, block, record))
            known |= set(record.writes)
    return found


def _backward_actions(n, records, known, copies_only=False) -> list[Action]:
    found = []
    for block, record in reversed(records):
        if not record.writes or record.writes[0] not in known:
            continue
        kind = block_kind(type(block))
        if kind == "assign":
            source = copied_function(block)
            if source is not None and source not in known:
                found.append(Action("copy", n, block, record, source, record.writes[0]))
                known.add(source)
            elif source is None and not copies_only:
                target = affine_input(block, known)
                if target is not None:
                    found.append(Action("affine", n, block, record, target))
                    known.add(target)
        elif kind == "solve" and not copies_only:
            unknown = [bv for bv in solve_inputs(block).all if bv not in known]
            if len(unknown) == 1:
                check_solve(block)
                found.append(Action("solve", n, block, record, unknown[0]))
                known.add(unknown[0])
    return found


def _irreversible(n, records, key) -> ConfigurationError:
    reader = next((block for block, record in records if key in record.reads), None)
    return ConfigurationError(
        f"time step {n} cannot be run backwards: the value of {key} "
        f"({type(key.output).__name__}), read by {reader}, cannot be recovered from the "
        f"values after the step. {RUNS_BACKWARDS}"
    )


class StepInverter:
    """Runs steps backwards through their plans (made once per step).

    :attr:`side` holds, per solve block, the side data its inverse needs (the unstable
    rows of its inputs, see :mod:`.solve_inverse`), recorded by :meth:`record` in the
    forward; steps the user declared the inverse of (the schedule's ``inverse``) need none.
    """

    def __init__(self, model, patterns, schedule):
        self.model = model
        self.patterns = patterns
        self.schedule = schedule  # its ``inverse`` may be set after checkpointing is enabled
        self._plans: dict = {}
        self.side: dict = {}  # id(solve block) -> {input position: values on its rows}

    def record(self, n: int) -> None:
        """Store the side data of step ``n``, just run forwards (its values held)."""
        if self.schedule.inverse is not None:
            return
        for block in self.model.blocks[n]:
            if block_kind(type(block)) != "solve":
                continue
            inputs = solve_inputs(block)
            inverse = self._inverse(block, inputs)
            side = inverse.side_data(block, inputs) if inverse else {}
            if side:
                self.side[id(block)] = side
            else:
                self.side.pop(id(block), None)

    def side_bytes(self) -> int:
        return sum(v.nbytes for side in self.side.values() for v in side.values())

    def run_backwards(self, n: int, optional=frozenset()) -> dict:
        """Give every value of step ``n`` from those after it.

        Values of ``optional`` keys are returned, not set (they are compared, not used).
        """
        declared = self.schedule.inverse
        key = (n, frozenset(optional), id(declared))
        if key not in self._plans:
            self._plans[key] = plan_backwards(self.model, n, optional, declared)
        side: dict = {}

        def value_of(bv):
            return side[bv] if bv in side else bv.saved_output

        def give(target, value):
            if target in optional:
                side[target] = value
            else:
                target.checkpoint = value

        for action in self._plans[key]:
            if action.kind == "forward":
                self.model.run_block(action.n, action.block, action.record)
            elif action.kind == "declared":
                states = action.block.run([value_of(k) for k in action.source])
                for target, value in zip(action.target, states):
                    if target is not None:
                        give(target, value)
            elif action.kind == "affine":
                give(action.target, run_assign_backwards(action.block, action.target, value_of))
            else:
                give(action.target, value_of(action.source) if action.kind == "copy"
                     else self._solve(action, value_of))
        return side

    def _solve(self, action, value_of):
        inputs = solve_inputs(action.block)
        inverse = self._inverse(action.block, inputs)
        if not inverse:
            SolveInverse(action.block, inputs)  # raises the refusal naming the block
        return inverse.run(action.block, inputs, value_of, inputs.all.index(action.target),
                           self.side.get(id(action.block), {}))

    def _inverse(self, block, inputs):
        """The inverse of ``block``'s pattern; False for a solve that has none."""
        def make():
            try:
                return SolveInverse(block, inputs)
            except ConfigurationError:
                return False

        return self.patterns.get_or_make(SolveInverse.key(self.patterns, block, inputs), make)
