"""A step's inverse declared by the user, for schemes fe_adjoint cannot invert itself.

fe_adjoint derives the inverse of copies and of explicit linear solves without Dirichlet
conditions (:mod:`.inverse`). For any other reversible step (Dirichlet conditions, a residual
not affine in the value it overwrites, a scheme written with several solves) the user gives
the step's state Functions and a function that runs one step backwards::

    def step_back(u_n, u_nm1, c):
        # u_n, u_nm1 hold the state after a step; overwrite them with the state before it
        ...

    schedule = fe_adjoint.ReversibleSchedule(
        N, 100, inverse=fe_adjoint.DeclaredInverse((u_n, u_nm1), step_back, reads=(c,)))

``step_back`` is called with new Functions holding the values after step ``n``, one per
state, followed by the values step ``n`` read of each object of ``reads``: everything it
uses that the run changes (a control, a time Constant) must come from there, never from the
script's own objects, whose live values belong to another step or control. It runs untaped.
Its results are the states' values at the start of step ``n``; the step's other values come
from running its operations forwards and from the derived rules, and whatever they cannot
give is refused as usual. A wrong inverse is caught by the drift check: its segment is
recomputed from its anchor, with a warning.
"""

from __future__ import annotations

from ..errors import ConfigurationError


class DeclaredInverse:
    """The inverse of every time step, given by the user (see the module).

    Parameters
    ----------
    states
        The Functions the step advances (e.g. ``(u_n, u_nm1)``).
    backwards
        ``backwards(*states, *reads)``: overwrites the state Functions it is given, which
        hold the values after a step, with the values before it.
    reads
        Functions and Constants ``backwards`` reads that the run changes; it is given the
        values the step read.
    """

    def __init__(self, states, backwards, reads=()):
        from firedrake import Constant, Function

        self.states, self.reads = tuple(states), tuple(reads)
        if not self.states or not all(isinstance(s, Function) for s in self.states):
            raise ConfigurationError(
                "DeclaredInverse needs the step's state Functions, e.g. (u_n, u_nm1)")
        if not all(isinstance(r, (Function, Constant)) for r in self.reads):
            raise ConfigurationError("DeclaredInverse reads= takes Functions and Constants")
        if not callable(backwards):
            raise ConfigurationError(
                "DeclaredInverse needs a function backwards(*states, *reads)")
        self.backwards = backwards

    def __deepcopy__(self, memo):
        return self  # configuration naming the script's objects: copies of a schedule share it

    def keys(self, model, n: int, known) -> tuple[tuple, tuple]:
        """``(before, given)``: keys of step ``n``'s states and of what ``backwards`` gets.

        ``before``: each state's key at the start of step ``n`` (None where the step does
        not read it); ``given``: the keys of the values :attr:`backwards` is called with.
        """
        index = model.index
        before = tuple(_key_of(index.restart_keys(n), s) for s in self.states)
        after = index.restart_keys(n + 1) if n + 1 < model.n_steps else _last_values(
            index.records(n))
        given = tuple(_key_of(after, s) for s in self.states)
        reads = {k for record in index.records(n) for k in record.reads}
        given += tuple(_key_of(reads, r) for r in self.reads)
        for key, obj in zip(given, self.states + self.reads):
            if key is None or key not in known:
                read = any(obj is r for r in self.reads)
                what = "is not read by" if read else "is not a state after"
                raise ConfigurationError(
                    f"DeclaredInverse: {obj} {what} time step {n}, or its value there is not "
                    "known when running it backwards; list in states= the Functions the step "
                    "advances and in reads= values the step reads but does not change")
        return before, given

    def run(self, values) -> list:
        """The states before the step, from ``values`` (the :meth:`keys` ``given``)."""
        from pyadjoint import stop_annotating

        n_states = len(self.states)
        with stop_annotating():
            states = [v.copy(deepcopy=True) for v in values[:n_states]]
            self.backwards(*states, *values[n_states:])
        return states


def _key_of(keys, obj):
    return next((k for k in keys if getattr(k, "output", None) is obj), None)


def _last_values(records) -> list:
    """The last value of each object a step read or wrote (the tape keeps them after it)."""
    last = {}
    for record in records:
        for key in (*record.reads, *record.writes):
            last[id(getattr(key, "output", key))] = key
    return list(last.values())
