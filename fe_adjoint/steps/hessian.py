"""Second-order adjoints of Firedrake blocks from forms derived once per pattern.

A Hessian action runs, after a tangent-linear sweep has given every value ``y`` its
tangent ``y'``, the adjoint and the second-order adjoint backwards together: each output
brings its adjoint ``a`` and second-order adjoint ``h``. pyadjoint's blocks re-derive
their forms (the residual differentiated twice) at every call and assemble and factorise
the adjoint operator afresh. Here, per block pattern (see :mod:`fe_adjoint.steps.patterns`):

* a **solve** ``F(u; x) = 0``: the adjoint ``(dF/du)^T lam = a`` and the second-order
  adjoint ``(dF/du)^T mu = h - D_(u',x')[(dF/du)^T lam]`` share one assembled adjoint
  operator and its factorisation (that of the first-order adjoint, and of the forward
  replays where the Jacobian reads only Constants and is symmetric); input ``x_i``
  receives ``-(dF/dx_i)^T lam`` and ``-(dF/dx_i)^T mu - D_(u',x')[(dF/dx_i)^T lam]``;
* an **assembled scalar** ``j(x)``: ``x_i`` receives ``a dj/dx_i`` and
  ``h dj/dx_i + a D_x'[dj/dx_i]``;
* a **copy** passes both through.

``D_(u',x')`` is the derivative along the tangents of the unknown and the inputs. Any other
block, and any block differentiated with respect to a value its forms do not read as a
Function, runs pyadjoint's ``evaluate_adj`` and ``evaluate_hessian``.
"""

from __future__ import annotations

from .adjoint import AssembleAdjoint, SolveAdjoint, add_adjoint, copy_adjoint, relevant_inputs
from .hessian_forms import differentiable_residual
from .operators import solve_into
from .patterns import (
    Assembly,
    FormInputs,
    axpy,
    block_pattern,
    copy_values,
    derived,
    directional,
)
from .rules import block_kind
from .tangent import load_tangents, tangent_inputs


def evaluate_hessian(patterns, block, markings: bool) -> None:
    """Add ``block``'s adjoint and second-order adjoint contributions to its inputs'.

    ``patterns=None``: through pyadjoint's block methods.
    """
    done = markings and patterns is not None and (
        copy_adjoint(block, ("adj_value", "hessian_value")) if block_kind(type(block)) == "assign"
        else _by_pattern(patterns, block))
    if not done:
        block.evaluate_adj(markings=markings)
        with differentiable_residual(block):
            block.evaluate_hessian(markings=markings)


def _by_pattern(patterns, block) -> bool:
    """Evaluate ``block``'s Hessian through its pattern; False if pyadjoint must."""
    pattern = block_pattern(block)
    if pattern is None or len(block.get_outputs()) != 1:
        return False
    out = block.get_outputs()[0]
    if out.adj_value is None and out.hessian_value is None:
        return True
    relevant = relevant_inputs(block, pattern.inputs)
    tangents = tangent_inputs(block, pattern.inputs)
    if relevant is None or tangents is None \
            or any(bv not in relevant for bv in tangents.active):
        return False
    if relevant:
        inputs = FormInputs(pattern.inputs.all, tuple(relevant))
        derived(patterns, block, pattern, inputs, "hessian", _HESSIANS).evaluate(inputs, out)
    return True


class _Tangents:
    """Placeholders for the tangents of the differentiated inputs (and of a solve's unknown)."""

    def __init__(self, active, unknown=None):
        from firedrake import Function

        self.inputs = [Function(c.function_space()) for c in active]
        self.unknown = None if unknown is None else Function(unknown.function_space())
        self.variables = [*([] if unknown is None else [unknown]), *active]
        self.directions = [*([] if unknown is None else [self.unknown]), *self.inputs]

    def along(self, expression):
        """The derivative of ``expression`` along the tangents."""
        return directional(expression, self.variables, self.directions)

    def load(self, inputs: FormInputs, out=None) -> None:
        """Copy in the active inputs' tangents (and ``out``'s); a missing one is zero."""
        load_tangents(self.inputs, inputs.active)
        if self.unknown is not None:
            load_tangents([self.unknown], [out])


def _float(value) -> float:
    return 0.0 if value is None else float(value)


class _AssembleHessian:
    """Adjoint and second-order adjoint of an assembled scalar ``j``."""

    def __init__(self, patterns, block, inputs: FormInputs):
        self.first = first = AssembleAdjoint(patterns, block, inputs)
        self.tangents = _Tangents(first.placeholders.active)
        self.second = [Assembly(self.tangents.along(dj)) for dj in first.forms]

    def evaluate(self, inputs: FormInputs, out) -> None:
        adj, hessian = _float(out.adj_value), _float(out.hessian_value)
        self.first.placeholders.load_values(inputs)
        self.tangents.load(inputs)
        for bv, first, second in zip(inputs.active, self.first.derivatives, self.second):
            gradient = first()
            if gradient is not None:
                if out.adj_value is not None:
                    add_adjoint(bv, gradient, adj)
                add_adjoint(bv, gradient, hessian, kind="hessian_value")
            curvature = second() if out.adj_value is not None else None
            if curvature is not None:
                add_adjoint(bv, curvature, adj, kind="hessian_value")


class _SolveHessian:
    """Adjoint ``lam`` and second-order adjoint ``mu`` of a solve, with one operator."""

    def __init__(self, patterns, block, inputs: FormInputs):
        import firedrake
        import ufl

        self.first = first = SolveAdjoint(patterns, block, inputs)
        V = first.space
        self.tangents = t = _Tangents(first.placeholders.active, first.unknown)
        self.second_adjoint = firedrake.Function(V)
        # D_(u',x')[(dF/du)^T lam], subtracted from h
        self.curvature = Assembly(t.along(
            firedrake.derivative(first.weighted, first.unknown, firedrake.TestFunction(V))))
        (test,) = first.residual.arguments()
        weighted = ufl.replace(first.residual, {test: self.second_adjoint})
        self.contributions = [  # (dF/dx_i)^T mu + D_(u',x')[(dF/dx_i)^T lam]
            Assembly(ufl.algorithms.expand_derivatives(
                firedrake.derivative(weighted, c, test_c) + t.along(
                    firedrake.derivative(first.weighted, c, test_c))))
            for c in first.placeholders.active
            for test_c in [firedrake.TestFunction(c.function_space())]
        ]
        self.rhs = firedrake.Cofunction(V.dual())

    def evaluate(self, inputs: FormInputs, out) -> None:
        first = self.first
        if out.adj_value is None:
            first.placeholders.load_values(inputs)
            copy_values(first.unknown, out.saved_output)
            first.operator.update()
            first.adjoint.zero()
        else:
            first.evaluate(inputs, out)  # lam, and -(dF/dx_i)^T lam added to the adjoints
        self.tangents.load(inputs, out)
        if out.hessian_value is None:
            self.rhs.zero()
        else:
            copy_values(self.rhs, out.hessian_value)
        curvature = self.curvature()
        if curvature is not None:
            axpy(self.rhs, -1.0, curvature)
        solve_into(first.operator.ksp, first.bcs, self.rhs, self.second_adjoint)
        for bv, contribution in zip(inputs.active, self.contributions):
            value = contribution()
            if value is not None:
                add_adjoint(bv, value, -1.0, kind="hessian_value")


_HESSIANS = {"solve": _SolveHessian, "assemble": _AssembleHessian}
