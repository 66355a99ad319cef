"""One tape block per time step.

When a step ends, its blocks leave pyadjoint's tape and a :class:`StepBlock`
takes their place: the step's inputs (values it reads that earlier steps or the
set-up produced) are its dependencies, everything it writes its outputs. The
step model keeps the step's operations and runs them -- their adjoints through
per-pattern derived forms (:mod:`fe_adjoint.steps.adjoint`) -- so pyadjoint's
walks over the tape (marking, resetting, visualising) see one node per step.

pyadjoint has no API to replace taped blocks; :func:`fuse_step` edits the tape's
``TimeStepSequence`` (a list of blocks plus a list of steps) in place, and is the
only code that does.
"""

from __future__ import annotations

from pyadjoint.block import Block


class StepBlock(Block):
    """Time step ``n`` of a tape as one block (its operations are in ``operations``)."""

    def __init__(self, n: int, operations):
        super().__init__()
        self.n = n
        self.operations = tuple(operations)
        produced = set()
        for block in self.operations:
            for bv in block.get_dependencies():
                if bv not in produced and bv not in self._dependencies:
                    self._dependencies.append(bv)
            for bv in block.get_outputs():
                produced.add(bv)
                self._outputs.append(bv)

    def __str__(self):
        return f"time step {self.n} ({len(self.operations)} operations)"

    def recompute(self, *args, **kwargs):
        raise RuntimeError("fe_adjoint runs the operations of a StepBlock; use the tape")

    evaluate_adj = evaluate_tlm = evaluate_hessian = recompute


def fuse_step(tape, n: int, count: int) -> None:
    """Replace the first ``count`` blocks of step ``n`` (the newest step) by one StepBlock.

    Blocks after them (taped after the functional) stay on the tape as they are.
    """
    sequence = tape.get_blocks()
    step = sequence.steps[n]
    if n != len(sequence.steps) - 1 or count <= 1:
        return
    start = len(sequence) - len(step)
    rest = list(step[count:])
    block = StepBlock(n, step[:count])
    list.__delitem__(sequence, slice(start, len(sequence)))
    list.append(sequence, block)
    list.extend(sequence, rest)
    step.clear()
    step.extend([block, *rest])


def refine_control_dependence(steps, controls) -> None:
    """Mark exactly the values that depend on ``controls``, operation by operation.

    pyadjoint marks every output of a block one of whose inputs depends on the
    controls; on a :class:`StepBlock` that marks every value of the step, and misses
    what depends on a control made inside a step. Walking the operations (``steps``:
    each step's list of blocks) sets the marks pyadjoint would set on the uncoarsened
    tape.
    """
    for blocks in steps:
        for block in blocks:
            depends = any(bv.is_control_dependent or bv in controls
                          for bv in block.get_dependencies())
            for bv in block.get_outputs():
                bv.is_control_dependent = depends or bv in controls
