"""What kind of operation a Firedrake block is, and what its adjoint reads.

What a block's forward reads (its dependencies and the objects it reads live) is
found when it is taped, by :mod:`fe_adjoint.tape.reads`.

Adjoint reads
    The adjoint of a block reads only the values that appear in the first
    derivatives of its form: for a residual ``F(u; w)`` those of ``dF/du`` (the
    adjoint operator) and of every ``dF/dw``. So the adjoint of a linear solve
    whose operator does not depend on the state reads no state, an
    assignment of a linear combination reads nothing, and ``assemble(u**2*dx)``
    reads ``u``. Blocks without a recognised form keep every dependency and
    output (always correct, never lean).
"""

from __future__ import annotations

from functools import lru_cache


def shed_assembler(block) -> None:
    """Give an assemble block a copy of its form without Firedrake's cached assembler.

    ``assemble(form)`` stashes its assembler (parallel loops, result tensor, PETSc
    vectors) on the form; a tape keeps one such form per step and so ~100 KB per
    step that no replay uses (replays assemble new forms). The copy shares the
    integrals and holds no cache.
    """
    import ufl

    form = getattr(block, "form", None)
    if block_kind(type(block)) == "assemble" and type(form) is ufl.Form and form._cache:
        block.form = ufl.Form(form.integrals())


@lru_cache(maxsize=None)
def block_kind(cls) -> str:
    """What a block class does: constant, solve, assemble, assign, float (arithmetic) or other."""
    from firedrake.adjoint_utils.blocks.assembly import AssembleBlock
    from firedrake.adjoint_utils.blocks.constant import ConstantAssignBlock
    from firedrake.adjoint_utils.blocks.function import FunctionAssignBlock
    from firedrake.adjoint_utils.blocks.solving import GenericSolveBlock
    from pyadjoint.adjfloat import AdjFloatExprBlock

    for kind, base in (("constant", ConstantAssignBlock), ("solve", GenericSolveBlock),
                       ("assemble", AssembleBlock), ("assign", FunctionAssignBlock),
                       ("float", AdjFloatExprBlock)):
        if issubclass(cls, base):
            return kind
    return "other"


def adjoint_reads(block, reads: tuple, writes: tuple) -> tuple:
    """The keys the adjoint of ``block`` reads, of ``reads`` (the keys its forward reads).

    Captured inputs (keys that are no BlockVariable) are always kept: they are held for
    the life of the tape anyway.
    """
    from firedrake import Function
    from pyadjoint.block_variable import BlockVariable

    captured = tuple(key for key in reads if not isinstance(key, BlockVariable))
    if captured:
        reads = tuple(key for key in reads if isinstance(key, BlockVariable))
        return (*captured, *adjoint_reads(block, reads, writes))
    kind = block_kind(type(block))
    if kind == "constant" or (kind == "assign" and block.expr is None):
        return ()  # the adjoint of a copy passes its input through
    if kind == "solve":
        # The state enters through the output; the unknown's previous value is only the
        # initial guess, which the adjoint never reads.
        residual = _linear_residual(block) if getattr(block, "linear", False) else block.lhs
        candidates = (*(bv for bv in reads if bv.output is not block.func), *writes)
    elif kind in ("assemble", "assign"):
        residual = block.form if kind == "assemble" else block.expr
        candidates = reads  # the result itself is never read back
    else:
        return (*reads, *writes)
    key = (kind, _structure(block, kind),
           tuple((type(bv.output), bv.output is getattr(block, "func", None)) for bv in candidates))
    kept = _KEPT_POSITIONS.get(key)
    if kept is None:
        needed = _coefficients_of_first_derivatives(residual, [bv.output for bv in candidates])
        if needed is None:
            return (*reads, *writes)
        kept = tuple(i for i, bv in enumerate(candidates)
                     if not isinstance(bv.output, Function) or id(bv.output) in needed)
        if len(_KEPT_POSITIONS) > 1024:
            _KEPT_POSITIONS.clear()
        _KEPT_POSITIONS[key] = kept
    return tuple(candidates[i] for i in kept)


# What adjoint_reads found, by the structure of a block: forms and expressions with the
# same structure over inputs of the same kinds keep the same positions.
_KEPT_POSITIONS: dict = {}


def _structure(block, kind):
    import ufl

    parts = [block.lhs, block.rhs] if kind == "solve" else \
        [block.form if kind == "assemble" else block.expr]
    return tuple(p.signature() if isinstance(p, ufl.form.Form) else str(p) for p in parts)


def _linear_residual(block):
    import firedrake

    return firedrake.action(block.lhs, block.func) - block.rhs


def _coefficients_of_first_derivatives(residual, outputs) -> set[int] | None:
    """Ids of the Functions appearing in d(residual)/dw for every Function w it contains."""
    import ufl
    from firedrake import Function
    from ufl.algorithms import expand_derivatives
    from ufl.algorithms.analysis import extract_coefficients

    try:
        present = {id(c): c for c in extract_coefficients(residual)}
        needed: set[int] = set()
        for w in outputs:
            if not isinstance(w, Function) or id(w) not in present:
                continue
            derivative = expand_derivatives(ufl.derivative(residual, w))
            needed.update(id(c) for c in extract_coefficients(derivative))
        return needed
    except Exception:  # an expression UFL cannot differentiate: keep everything
        return None
