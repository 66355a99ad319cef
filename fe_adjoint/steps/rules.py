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

from pyadjoint.block_variable import BlockVariable


def shed_assembler(block) -> None:
    """Drop the assembler Firedrake cached on an assemble block's form.

    ``assemble(form)`` stashes its assembler (parallel loops, result tensor, PETSc
    vectors) on the form it assembles, which for a taped assembly is the block's own
    (preprocessed) form; a tape keeps one such form per step and so ~100 KB per step
    that no replay uses (replays assemble new forms).
    """
    import ufl

    form = getattr(block, "form", None)
    if block_kind(type(block)) == "assemble" and type(form) is ufl.Form:
        form._cache.clear()


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


def copies_function(block, bv) -> bool:
    """Whether ``block`` copies a Function of ``bv``'s space into ``bv``.

    ``u_old.assign(u)`` or ``u.copy(deepcopy=True)``: ``bv``'s value is then its source's.
    """
    if block_kind(type(block)) != "assign" or block.expr is not None:
        return False
    deps = block.get_dependencies()
    if len(deps) != 1:
        return False
    source, target = deps[0].output, bv.output
    if not isinstance(source, type(target)) or not hasattr(source, "function_space"):
        return False
    a, b = source.function_space(), target.function_space()
    return a is b or a == b


def adjoint_reads(block, reads: tuple, writes: tuple) -> tuple:
    """The keys the adjoint of ``block`` reads, of ``reads`` (the keys its forward reads).

    Captured inputs (keys that are no BlockVariable) are always kept: they are held for
    the life of the tape anyway.
    """
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
        candidates = (*(bv for bv in reads if bv.output is not block.func), *writes)
    elif kind in ("assemble", "assign"):
        candidates = reads  # the result itself is never read back
    else:
        return (*reads, *writes)
    key = (kind, _structure(block, kind),
           tuple((type(bv.output), bv.output is getattr(block, "func", None)) for bv in candidates))
    kept = _KEPT_POSITIONS.get(key)
    if kept is None:
        needed = _coefficients_of_first_derivatives(_residual(block, kind),
                                                    [bv.output for bv in candidates])
        if needed is None:
            return (*reads, *writes)
        from firedrake import Function

        kept = tuple(i for i, bv in enumerate(candidates)
                     if not isinstance(bv.output, Function) or id(bv.output) in needed)
        if len(_KEPT_POSITIONS) > 1024:
            _KEPT_POSITIONS.clear()
        _KEPT_POSITIONS[key] = kept
    return tuple(candidates[i] for i in kept)


# What adjoint_reads found, by the structure of a block: forms and expressions with the
# same structure over inputs of the same kinds keep the same positions. Its keys hold forms
# (and so their coefficients): emptied when a tape is cleared (forget_forms).
_KEPT_POSITIONS: dict = {}


def forget_forms() -> None:
    """Let go of the forms the classification caches hold (a tape was cleared)."""
    _KEPT_POSITIONS.clear()


def _structure(block, kind) -> tuple:
    """The forms or expression of ``block``, compared by structure (see :class:`_Structure`).

    An assembled form Firedrake has signed (its assembly computes the signature) is keyed by
    its signature: a new form every step (``assemble(u**2*dx)``) then costs no traversal.
    Equal signatures are the same form up to a renumbering of its coefficients in their
    order, which is the order of the block's dependencies.
    """
    if kind == "assemble":
        signature = getattr(block.form, "_signature", None)
        if signature is not None:
            return (signature,)
    parts = (block.lhs, block.rhs) if kind == "solve" else \
        (block.form if kind == "assemble" else block.expr,)
    return tuple(_Structure(part) for part in parts)


class _Structure:
    """A form or expression as a dictionary key: equal when UFL finds them equal.

    A step's solver re-uses its form object and its ``assemble(u**2*dx)`` builds an equal
    one: identity, then UFL's cached hash and structural equality (over the same
    coefficients) find them in microseconds, where a form signature takes ~0.2 ms.
    """

    __slots__ = ("part", "_hash")

    def __init__(self, part):
        self.part = part
        self._hash = hash(part)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        a, b = self.part, other.part
        if a is b:
            return True
        if type(a) is not type(b):
            return False
        equals = getattr(a, "equals", None)  # a Form's == builds an Equation
        return bool(equals(b)) if equals is not None else bool(a == b)


def _residual(block, kind):
    """The form (or expression) whose first derivatives the adjoint of ``block`` reads."""
    import firedrake

    if kind == "assemble":
        return block.form
    if kind == "assign":
        return block.expr
    if getattr(block, "linear", False):
        return firedrake.action(block.lhs, block.func) - block.rhs
    return block.lhs


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
