"""The one tape block an observation adds: the running reduction of a time functional.

Observation ``k`` of a functional tapes a single block whose dependencies are the
running value ``R_(k-1)`` (none for the first) and the term's inputs at that step, and
whose output is ``R_k``:

* :class:`SumObservationBlock`: ``R_k = R_(k-1) + w_k j_k``; the adjoint passes the
  running value's adjoint through and adds ``w_k adj dj_k`` to the step's inputs;
* :class:`MaxObservationBlock`: ``R_k = max(R_(k-1), j_k)``; the adjoint goes to the
  winner only, ``j_k`` if ``j_k > R_(k-1)`` (a tie keeps the earlier winner);
* :class:`FieldMaxObservationBlock`: ``P_k = max(P_(k-1), u_k)`` degree of freedom by
  degree of freedom, for a Function ``P``; its adjoint is masked the same way.

The running value is restart data of the steps in between (a float, or ``P``), and the
block is one of the step's operations: under fe_adjoint's checkpointing the whole step,
with its observations, is one block of the tape.
"""

from __future__ import annotations

import numpy as np
from pyadjoint.adjfloat import AdjFloat
from pyadjoint.block import Block


class _ObservationBlock(Block):
    """Running scalar reduction: dependencies ``[R_(k-1)]`` (if any) then the term's."""

    def __init__(self, term, previous):
        super().__init__()
        self.term = term
        self.form = getattr(term, "form", None)  # read live (its Constants) like an assembly
        self.offset = 0 if previous is None else 1
        if previous is not None:
            self.add_dependency(previous)
        for obj in term.dependencies():
            self.add_dependency(obj, no_duplicates=True)

    def __str__(self):
        return f"{type(self).__name__}({self.term.__class__.__name__})"

    def _term_inputs(self, inputs):
        return inputs[self.offset:]

    def _previous(self, inputs):
        return float(inputs[0]) if self.offset else None

    def _term_relevant(self, relevant):
        return [(i - self.offset, bv) for i, bv in relevant if i >= self.offset]

    def recompute_component(self, inputs, block_variable, idx, prepared):
        return AdjFloat(self.combine(self._previous(inputs),
                                     self.term.value(self._term_inputs(inputs))))


class SumObservationBlock(_ObservationBlock):
    """``R_k = R_(k-1) + weight * j_k``."""

    def __init__(self, term, previous, weight: float):
        super().__init__(term, previous)
        self.weight = float(weight)

    def combine(self, previous, value):
        return self.weight * value + (previous or 0.0)

    def evaluate_adj_component(self, inputs, adj_inputs, block_variable, idx, prepared=None):
        if idx < self.offset:
            return adj_inputs[0]
        return self.term.adjoint(self._term_inputs(inputs), self.weight * adj_inputs[0],
                                 block_variable, idx - self.offset)

    def evaluate_tlm_component(self, inputs, tlm_inputs, block_variable, idx, prepared=None):
        deps = self.get_dependencies()
        previous = deps[0].tlm_value if self.offset else None
        value = self.weight * self.term.tlm(self._term_inputs(inputs), deps[self.offset:])
        return AdjFloat(value + (float(previous) if previous is not None else 0.0))

    def evaluate_hessian_component(self, inputs, hessian_inputs, adj_inputs, block_variable,
                                   idx, relevant_dependencies, prepared=None):
        if idx < self.offset:
            return hessian_inputs[0]
        adj = adj_inputs[0]
        return self.term.hessian(self._term_inputs(inputs), self.weight * hessian_inputs[0],
                                 None if adj is None else self.weight * adj, block_variable,
                                 idx - self.offset, self._term_relevant(relevant_dependencies))


class MaxObservationBlock(_ObservationBlock):
    """``R_k = max(R_(k-1), j_k)``; on a tie the earlier observation stays the winner."""

    def combine(self, previous, value):
        return value if previous is None or value > previous else previous

    def _term_won(self, inputs) -> bool:
        """Whether ``j_k`` is the maximum so far.

        Found from the inputs alone (one more evaluation of the term): the saved output
        may belong to another pass.
        """
        if not self.offset:
            return True
        return self.term.value(self._term_inputs(inputs)) > float(inputs[0])

    def evaluate_adj_component(self, inputs, adj_inputs, block_variable, idx, prepared=None):
        if (idx >= self.offset) != self._term_won(inputs):
            return None
        if idx < self.offset:
            return adj_inputs[0]
        return self.term.adjoint(self._term_inputs(inputs), adj_inputs[0], block_variable,
                                 idx - self.offset)

    def evaluate_tlm_component(self, inputs, tlm_inputs, block_variable, idx, prepared=None):
        deps = self.get_dependencies()
        if self._term_won(inputs):
            return AdjFloat(self.term.tlm(self._term_inputs(inputs), deps[self.offset:]))
        return deps[0].tlm_value

    def evaluate_hessian_component(self, inputs, hessian_inputs, adj_inputs, block_variable,
                                   idx, relevant_dependencies, prepared=None):
        if (idx >= self.offset) != self._term_won(inputs):
            return None
        if idx < self.offset:
            return hessian_inputs[0]
        return self.term.hessian(self._term_inputs(inputs), hessian_inputs[0], adj_inputs[0],
                                 block_variable, idx - self.offset,
                                 self._term_relevant(relevant_dependencies))


class FieldMaxObservationBlock(Block):
    """``P_k = max(P_(k-1), u_k)`` per degree of freedom (``P_0 = u_0``)."""

    def __init__(self, u, previous):
        super().__init__()
        self.offset = 0 if previous is None else 1
        if previous is not None:
            self.add_dependency(previous)
        self.add_dependency(u)

    def __str__(self):
        return "FieldMaxObservationBlock"

    def _mask(self, inputs) -> np.ndarray:
        """Where ``u_k`` is the winner (strictly above the running maximum)."""
        u = inputs[-1].dat.data_ro
        if not self.offset:
            return np.ones(u.shape, dtype=bool)
        return u > inputs[0].dat.data_ro

    @staticmethod
    def _select(mask, chosen, other, like):
        """``chosen`` where ``mask``, else ``other`` (None reads as zero), as a copy of ``like``."""
        out = like.copy(deepcopy=True)
        out.dat.data_wo[:] = np.where(mask, 0.0 if chosen is None else chosen.dat.data_ro,
                                      0.0 if other is None else other.dat.data_ro)
        return out

    def recompute_component(self, inputs, block_variable, idx, prepared):
        return self._select(self._mask(inputs), inputs[-1], inputs[0], inputs[-1])

    def _masked(self, inputs, value, idx):
        mask = self._mask(inputs)
        return self._select(mask if idx == self.offset else ~mask, value, None, value)

    def evaluate_adj_component(self, inputs, adj_inputs, block_variable, idx, prepared=None):
        return self._masked(inputs, adj_inputs[0], idx)

    def evaluate_tlm_component(self, inputs, tlm_inputs, block_variable, idx, prepared=None):
        previous = tlm_inputs[0] if self.offset else None
        return self._select(self._mask(inputs), tlm_inputs[-1], previous, inputs[-1])

    def evaluate_hessian_component(self, inputs, hessian_inputs, adj_inputs, block_variable,
                                   idx, relevant_dependencies, prepared=None):
        return self._masked(inputs, hessian_inputs[0], idx)
