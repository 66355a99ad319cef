"""Functionals of a whole run, observed step by step inside the time loop.

Each functional is built before the loop, ``observe()``-d once per step (after the
step's solve) and read through :attr:`value` after the loop::

    J = TimeIntegral(0.5 * (u - u_ref)**2 * dx, dt, rule="trapezoid", n_steps=N)
    J.observe()                        # the initial state (trapezoid rule: N + 1 samples)
    for _ in fe_adjoint.steps(N):
        solver.solve()
        J.observe()
    Jhat = ReducedFunctional(J.value, Control(m))

An observation tapes one block (:mod:`.blocks`), whatever the number of receivers.
Outside annotation the functionals just compute their values.
"""

from __future__ import annotations

import numpy as np
from pyadjoint.adjfloat import AdjFloat
from pyadjoint.tape import annotate_tape, get_working_tape, stop_annotating

from .blocks import FieldMaxObservationBlock, MaxObservationBlock, SumObservationBlock
from .terms import FormTerm, MisfitTerm, PointEvaluation


class _ScalarReduction:
    """A running scalar over observations; subclasses give the term and the block."""

    def __init__(self):
        self.count = 0  # observations so far
        self._value = None

    @property
    def value(self) -> AdjFloat:
        """The functional over the observations so far (an AdjFloat on the tape)."""
        return AdjFloat(0.0) if self._value is None else self._value

    def observe(self) -> None:
        """Add the current step's term (read from the objects' current values)."""
        k = self.count
        self.count += 1
        term = self._term(k)
        if term is None:
            return
        previous = self._value
        if not annotate_tape():
            value = term.value(term.dependencies())
            self._value = AdjFloat(self._combine(k, None if previous is None
                                                 else float(previous), value))
            return
        block = self._block(k, term, previous)
        get_working_tape().add_block(block)
        with stop_annotating():
            deps = block.get_dependencies()
            value = block.recompute_component([bv.saved_output for bv in deps], None, 0, None)
        self._value = AdjFloat(float(value))
        block.add_output(self._value.create_block_variable())


class _FormReduction(_ScalarReduction):
    def __init__(self, form):
        super().__init__()
        self.form = form

    def _term(self, k):
        if not annotate_tape():
            return _LiveForm(self.form)
        return FormTerm(self.form)


class _LiveForm:
    """A form's value outside annotation (no block, no dependencies)."""

    def __init__(self, form):
        self.form = form

    def dependencies(self):
        return []

    def value(self, inputs) -> float:
        from firedrake import assemble

        return float(assemble(self.form))


class TimeSum(_FormReduction):
    """``J = sum_k w_k j(u_k)``: the weighted sum of a scalar form over the observations.

    ``weights``: None (all 1), a number, a sequence indexed by observation, or a callable
    ``k -> w_k``.
    """

    def __init__(self, form, weights=None):
        super().__init__(form)
        self._weights = weights

    def weight(self, k: int) -> float:
        w = self._weights
        if w is None:
            return 1.0
        if callable(w):
            return float(w(k))
        if np.ndim(w) == 0:
            return float(w)
        if k >= len(w):
            raise IndexError(f"observation {k} of a TimeSum with {len(w)} weights: give one "
                             f"weight per observe() call")
        return float(w[k])

    def _combine(self, k, previous, value):
        return self.weight(k) * value + (previous or 0.0)

    def _block(self, k, term, previous):
        return SumObservationBlock(term, previous, self.weight(k))


class TimeIntegral(TimeSum):
    """``J = int j(u(t)) dt`` by a quadrature over the observations, ``dt`` apart.

    ``rule="rectangle"``: ``dt * sum_k j_k``. ``rule="trapezoid"``: the end points weigh
    ``dt / 2``; observe the initial state and every step, ``n_steps + 1`` observations.
    """

    RULES = ("rectangle", "trapezoid")

    def __init__(self, form, dt, rule: str = "rectangle", n_steps: int | None = None):
        if rule not in self.RULES:
            raise ValueError(f"unknown rule {rule!r}: choose one of {self.RULES}")
        if rule == "trapezoid" and n_steps is None:
            raise ValueError("the trapezoid rule needs n_steps (observations 0..n_steps)")
        dt = float(dt)
        self.rule, self.n_steps = rule, n_steps

        def weight(k):
            if n_steps is not None and k > n_steps:
                raise IndexError(f"observation {k} of a TimeIntegral over {n_steps} steps "
                                 f"(observations 0..{n_steps})")
            ends = rule == "trapezoid" and k in (0, n_steps)
            return dt / 2 if ends else dt

        super().__init__(form, weight)


class TimeMax(_FormReduction):
    """``J = max_k j(u_k)``.

    Its derivative is that of the winning observation's term; on a tie the earliest
    observation wins (it is the one kept).
    """

    def _combine(self, k, previous, value):
        return value if previous is None or value > previous else previous

    def _block(self, k, term, previous):
        return MaxObservationBlock(term, previous)


class PointMisfit(_ScalarReduction):
    """``J = sum_k 1/2 sum_r w_kr (u_k(x_r) - d_kr)^2``: a misfit against sensor records.

    Parameters
    ----------
    u
        The Function observed (its value at each ``observe()``).
    receivers
        A VertexOnlyMesh, or receiver coordinates (one row each); they may lie on any rank.
    data
        One record per observed step: rows of an array (observed steps x receivers, in the
        receivers' order, the same on every rank), or Functions on ``DG0`` of the
        VertexOnlyMesh ``receivers`` (as ``assemble(interpolate(u, V_r))`` gives them).
    observed
        The observation indices (``observe()`` calls, from 0) the records belong to; by
        default every call, in order. Other calls tape nothing.
    weights
        A number, or an array broadcast against ``data``'s (steps x receivers) shape.
    """

    def __init__(self, u, receivers, data, observed=None, weights=1.0):
        super().__init__()
        self.u = u
        self.evaluation = PointEvaluation(u.function_space(), receivers)
        self.records = list(data)
        n_records = len(self.records)
        self.observed = dict((k, i) for i, k in enumerate(
            range(n_records) if observed is None else observed))
        if len(self.observed) != n_records:
            raise ValueError(f"{n_records} records for {len(self.observed)} observed steps: "
                             f"give one record per entry of observed")
        self.weights = np.broadcast_to(np.asarray(weights, dtype=float),
                                       (n_records, self.evaluation.count))

    def _local(self, row, values):
        if hasattr(values, "dat"):  # a Function on the receivers: already this rank's
            return np.array(values.dat.data_ro, dtype=float)
        values = np.asarray(values, dtype=float)
        if values.shape != (self.evaluation.count,):
            raise ValueError(f"record {row} has shape {values.shape}; expected "
                             f"({self.evaluation.count},), one value per receiver")
        return values[self.evaluation.local_receivers]

    def _term(self, k):
        row = self.observed.get(k)
        if row is None:
            if self.observed and k > max(self.observed):
                raise IndexError(f"observe() call {k} of a PointMisfit with records for "
                                 f"{len(self.records)} observations: add records or stop "
                                 f"observing")
            return None
        weights = self.weights[row][self.evaluation.local_receivers]
        return MisfitTerm(self.u, self.evaluation, self._local(row, self.records[row]),
                          weights)

    def _combine(self, k, previous, value):
        return value + (previous or 0.0)

    def _block(self, k, term, previous):
        return SumObservationBlock(term, previous, 1.0)


class FieldMax:
    """``P = max_k u_k``, degree of freedom by degree of freedom.

    Pointwise for nodal elements such as CG1, DG0 or KMV. :attr:`value` is the Function
    ``P``, of which any functional may be taken after the loop. A tie keeps the earlier
    observation.
    """

    def __init__(self, u):
        from firedrake import Function

        self.u = u
        self.count = 0
        self.value = Function(u.function_space(), name=f"max over time of {u.name()}")

    def observe(self) -> None:
        """Take the maximum with the current value of ``u``."""
        first = self.count == 0
        self.count += 1
        annotate = annotate_tape()
        if annotate:
            block = FieldMaxObservationBlock(self.u, None if first else self.value)
            get_working_tape().add_block(block)
        with stop_annotating():
            P, u = self.value.dat.data_ro, self.u.dat.data_ro
            self.value.dat.data_wo[:] = u if first else np.maximum(P, u)
        if annotate:
            block.add_output(self.value.create_block_variable())
