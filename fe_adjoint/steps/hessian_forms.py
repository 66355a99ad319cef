"""Forms a solve block's Hessian can differentiate.

Firedrake's second-order adjoint of a solve differentiates its residual twice; a
residual ``a(u, v) - L(v) - f`` with a Cofunction ``f`` (a forcing re-assigned every
step, as in Firedrake's full-waveform-inversion demo) is a UFL ``FormSum`` that UFL
cannot differentiate ("Expecting bilinear form"). A Cofunction term that does not depend
on the controls contributes nothing to the Hessian (it is constant in every variable
differentiated), so :func:`differentiable_residual` leaves it out for the duration of
the block's Hessian evaluation.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def differentiable_residual(block):
    """Within the block, drop control-independent Cofunction terms from its residual."""
    import ufl
    from firedrake import Cofunction

    residual = getattr(block, "lhs", None)
    if not isinstance(residual, ufl.form.FormSum) or getattr(block, "linear", True):
        yield
        return
    dependent = {id(bv.output) for bv in block.get_dependencies() if bv.is_control_dependent}
    kept = [(c, w) for c, w in zip(residual.components(), residual.weights())
            if not isinstance(c, Cofunction) or id(c) in dependent]
    if len(kept) == len(residual.components()) or not kept:
        yield
        return
    block.lhs = kept[0][1] * kept[0][0] if len(kept) == 1 else ufl.FormSum(*kept)
    try:
        yield
    finally:
        block.lhs = residual
