"""Adjoints of Firedrake blocks from forms derived once per pattern, with operator reuse.

pyadjoint's Firedrake blocks re-derive their adjoint forms at every adjoint step,
and a solve block re-assembles and re-factorises its adjoint operator even when
the operator cannot have changed (a linear heat equation). Here, per block
pattern (see :mod:`fe_adjoint.patterns`):

* a **solve** ``F(u; x) = 0`` keeps the adjoint operator ``(dF/du)^T`` assembled
  and factorised; it is re-assembled only when a value it reads changed since it
  was last assembled (for the heat equation: never), and each input's adjoint
  ``-(dF/dx)^T lambda`` is one assembly of a derived 1-form;
* an **assembled scalar** ``j(x)`` adds ``adj * dj/dx`` (one assembly per input);
* a **copy** ``u_old.assign(u)`` passes its adjoint through.

Anything else (and any block whose boundary conditions or mesh are differentiated)
runs pyadjoint's own ``evaluate_adj``. Results equal pyadjoint's to round-off.
"""

from __future__ import annotations

from .operators import adjoint_solve_operator, solve_into
from .patterns import (
    Assembly,
    FormInputs,
    PatternCache,
    Placeholders,
    axpy,
    block_pattern,
    copied_function,
    copy_values,
    derived,
    homogeneous_bcs,
    solve_residual,
)
from .rules import block_kind


class FastAdjoint:
    """Evaluates block adjoints through per-pattern derived forms (pyadjoint's otherwise)."""

    def __init__(self, patterns: PatternCache):
        self.patterns = patterns

    def evaluate_adj(self, block, markings: bool) -> None:
        """Add ``block``'s adjoint contributions to its inputs' adjoint values."""
        done = markings and (copy_adjoint(block) if block_kind(type(block)) == "assign"
                             else _by_pattern(self.patterns, block))
        if not done:
            block.evaluate_adj(markings=markings)

    def evaluate_hessian(self, block, markings: bool) -> None:
        """Add ``block``'s adjoint and second-order adjoint contributions to its inputs'."""
        from .hessian import evaluate_hessian

        evaluate_hessian(self.patterns, block, markings)


def relevant_inputs(block, inputs: FormInputs) -> list | None:
    """The inputs to differentiate.

    None if pyadjoint must differentiate the block (its mesh or a boundary condition
    depends on the controls).
    """
    from firedrake import Cofunction

    wanted = [bv for bv in block.get_dependencies() if bv.is_control_dependent]
    if any(bv not in inputs.all and not _is_initial_guess(block, bv) for bv in wanted):
        return None
    if any(isinstance(bv.output, Cofunction) for bv in wanted):
        return None  # a derivative with respect to a Cofunction term: pyadjoint's
    return [bv for bv in inputs.all if bv in wanted]


def _is_initial_guess(block, bv) -> bool:
    return block_kind(type(block)) == "solve" and not block.linear and bv.output is block.func


def _by_pattern(patterns, block) -> bool:
    """Evaluate ``block``'s adjoint through its pattern; False if pyadjoint must."""
    pattern = block_pattern(block)
    if pattern is None:
        return False
    out = block.get_outputs()[0]
    if out.adj_value is None:
        return True
    relevant = relevant_inputs(block, pattern.inputs)
    if relevant is None:
        return False
    if relevant:
        inputs = FormInputs(pattern.inputs.all, tuple(relevant))
        derived(patterns, block, pattern, inputs, "adjoint", _ADJOINTS).evaluate(inputs, out)
    return True


def copy_adjoint(block, kinds=("adj_value",)) -> bool:
    """Pass a copy's adjoint (and ``kinds`` else) to its source; False for other blocks."""
    source = copied_function(block)
    if source is None:
        return False
    out = block.get_outputs()[0]
    if source.is_control_dependent:
        for kind in kinds:
            if getattr(out, kind) is not None:
                add_adjoint(source, getattr(out, kind), kind=kind)
    return True


def add_adjoint(bv, value, scale: float = 1.0, kind: str = "adj_value") -> None:
    """Add ``scale * value`` (a Cofunction, not kept) to ``bv``'s adjoint value.

    ``kind="hessian_value"``: to its second-order adjoint value.
    """
    from firedrake import Cofunction

    if getattr(bv, kind) is None:
        setattr(bv, kind, Cofunction(value.function_space()))
    axpy(getattr(bv, kind), scale, value)


class AssembleAdjoint:
    """``adj * dj/dx_i`` for an assembled scalar ``j``: one derived 1-form per input."""

    def __init__(self, patterns, block, inputs: FormInputs):
        import firedrake
        import ufl
        from ufl.algorithms import expand_derivatives

        self.placeholders = p = Placeholders(inputs)
        j = ufl.replace(block.form, p.replace_map)
        self.forms = [  # dj/dx_i
            expand_derivatives(
                firedrake.derivative(j, c, firedrake.TestFunction(c.function_space())))
            for c in p.active
        ]
        self.derivatives = [Assembly(form) for form in self.forms]

    def evaluate(self, inputs: FormInputs, out) -> None:
        adj = float(out.adj_value)
        self.placeholders.load_values(inputs)
        for bv, derivative in zip(inputs.active, self.derivatives):
            contribution = derivative()
            if contribution is not None:
                add_adjoint(bv, contribution, adj)


class SolveAdjoint:
    """The adjoint of a solve: one adjoint solve, then ``-(dF/dx_i)^T lambda`` per input."""

    def __init__(self, patterns, block, inputs: FormInputs):
        import firedrake
        import ufl
        from ufl.algorithms import expand_derivatives

        self.space = V = block.function_space
        self.placeholders = p = Placeholders(inputs)
        self.unknown = firedrake.Function(V)
        self.adjoint = firedrake.Function(V)
        self.residual = F = solve_residual(block, self.unknown, p.replace_map)
        jacobian = expand_derivatives(
            firedrake.derivative(F, self.unknown, firedrake.TrialFunction(V)))
        (test,) = F.arguments()
        self.weighted = weighted = ufl.replace(F, {test: self.adjoint})
        self.contributions = [
            Assembly(expand_derivatives(
                firedrake.derivative(weighted, c, firedrake.TestFunction(c.function_space()))))
            for c in p.active
        ]
        self.bcs = homogeneous_bcs(block)
        self.operator = adjoint_solve_operator(
            patterns, jacobian, expand_derivatives(ufl.adjoint(jacobian)), block, self.bcs)
        self.rhs = firedrake.Cofunction(V.dual())

    def evaluate(self, inputs: FormInputs, out) -> None:
        self.placeholders.load_values(inputs)
        copy_values(self.unknown, out.saved_output)
        self.operator.update()
        copy_values(self.rhs, out.adj_value)
        solve_into(self.operator.ksp, self.bcs, self.rhs, self.adjoint)
        for bv, contribution in zip(inputs.active, self.contributions):
            value = contribution()
            if value is not None:
                add_adjoint(bv, value, -1.0)


_ADJOINTS = {"solve": SolveAdjoint, "assemble": AssembleAdjoint}
