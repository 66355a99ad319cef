"""What a pyadjoint/Firedrake block reads beyond its listed dependencies, and what its adjoint reads.

Firedrake's solve and assemble blocks list the Functions of their forms as
dependencies but not the Constants: a Constant re-assigned every step (a time
``t``) is read live. fe_adjoint finds those Constants in the block's forms and
treats their taped values as dependencies, restoring them before the block
runs (see :mod:`fe_adjoint.step_model`).
"""

from __future__ import annotations

from functools import lru_cache

_FORM_ATTRIBUTES = ("lhs", "rhs", "form", "expr", "problem_J", "F")


def hidden_constants(block) -> tuple:
    """Constants appearing in a block's forms or expressions, in a stable order."""
    import ufl
    from firedrake import Constant
    from ufl.algorithms.analysis import extract_type

    found = {}
    for name in _FORM_ATTRIBUTES:
        try:
            value = getattr(block, name)
        except AttributeError:
            continue
        if isinstance(value, (ufl.form.BaseForm, ufl.core.expr.Expr)):
            for constant in extract_type(value, Constant):
                found.setdefault(id(constant), constant)
    return tuple(found.values())


@lru_cache(maxsize=None)
def _reads_nothing_in_adjoint(cls) -> bool:
    from firedrake.adjoint_utils.blocks.constant import ConstantAssignBlock

    return issubclass(cls, ConstantAssignBlock)


def adjoint_reads(block, reads: tuple, writes: tuple) -> tuple:
    """The keys a block's adjoint reads: none for assignments of constants, else all."""
    if _reads_nothing_in_adjoint(type(block)):
        return ()
    return (*reads, *writes)
