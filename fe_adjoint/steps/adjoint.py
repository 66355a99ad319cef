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

from .patterns import (
    Assembly,
    FormInputs,
    PatternCache,
    Placeholders,
    adjoint_solve_operator,
    axpy,
    copied_function,
    copy_values,
    form_inputs,
    homogeneous_bcs,
    plain_solve,
    solve_into,
    solve_pattern_extra,
    solve_residual,
)
from .rules import block_kind


class FastAdjoint:
    """Evaluates block adjoints through per-pattern derived forms (pyadjoint's otherwise)."""

    def __init__(self, patterns: PatternCache):
        self.patterns = patterns

    def evaluate_adj(self, block, markings: bool) -> None:
        """Add ``block``'s adjoint contributions to its inputs' adjoint values."""
        rule = _RULES.get(block_kind(type(block))) if markings else None
        if rule is None or not rule(self.patterns, block):
            block.evaluate_adj(markings=markings)


def _relevant(block, inputs: FormInputs) -> list | None:
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


def _solve_rule(patterns, block) -> bool:
    if not plain_solve(block):
        return False
    return _by_pattern(
        patterns, block, form_inputs(block, (), skip=() if block.linear else (block.func,)),
        "solve-adjoint", (block.lhs, block.rhs), solve_pattern_extra(block),
        lambda inputs: _SolveAdjoint(patterns, block, inputs),
        lambda pattern, inputs, out: pattern.evaluate(inputs, out))


def _assemble_rule(patterns, block) -> bool:
    if len(block.form.arguments()) != 0:
        return False
    return _by_pattern(
        patterns, block, form_inputs(block, ()), "assemble-adjoint", (block.form,), (),
        lambda inputs: _AssembleAdjoint(block.form, inputs),
        lambda pattern, inputs, out: pattern.evaluate(inputs, float(out.adj_value)))


def _by_pattern(patterns, block, inputs, kind, forms, extra, make, evaluate) -> bool:
    """Evaluate ``block``'s adjoint through its pattern; False if pyadjoint must."""
    out = block.get_outputs()[0]
    if out.adj_value is None:
        return True
    relevant = _relevant(block, inputs)
    if relevant is None:
        return False
    if relevant:
        inputs = FormInputs(inputs.all, tuple(relevant))
        key = patterns.key(kind, forms, inputs, *extra)
        evaluate(patterns.get_or_make(key, lambda: make(inputs)), inputs, out)
    return True


def _copy_rule(patterns, block) -> bool:
    source = copied_function(block)
    if source is None:
        return False
    out = block.get_outputs()[0]
    if out.adj_value is not None and source.is_control_dependent:
        _add_adjoint(source, out.adj_value)
    return True


def _add_adjoint(bv, value, scale: float = 1.0) -> None:
    """Add ``scale * value`` (a Cofunction, not kept) to ``bv``'s adjoint value."""
    from firedrake import Cofunction

    if bv.adj_value is None:
        bv.adj_value = Cofunction(value.function_space())
    axpy(bv.adj_value, scale, value)


_RULES = {"solve": _solve_rule, "assemble": _assemble_rule, "assign": _copy_rule}


class _AssembleAdjoint:
    """``adj * dj/dx_i`` for an assembled scalar ``j``: one derived 1-form per input."""

    def __init__(self, form, inputs: FormInputs):
        import firedrake
        import ufl
        from ufl.algorithms import expand_derivatives

        self.placeholders = p = Placeholders(inputs)
        j = ufl.replace(form, p.replace_map)
        self.derivatives = [
            Assembly(expand_derivatives(
                firedrake.derivative(j, c, firedrake.TestFunction(c.function_space()))))
            for c in p.active
        ]

    def evaluate(self, inputs: FormInputs, adj: float) -> None:
        self.placeholders.load_values(inputs)
        for bv, derivative in zip(inputs.active, self.derivatives):
            contribution = derivative()
            if contribution is not None:
                _add_adjoint(bv, contribution, adj)


class _SolveAdjoint:
    """The adjoint of a solve: one adjoint solve, then ``-(dF/dx_i)^T lambda`` per input."""

    def __init__(self, patterns, block, inputs: FormInputs):
        import firedrake
        import ufl
        from ufl.algorithms import expand_derivatives

        self.space = V = block.function_space
        self.placeholders = p = Placeholders(inputs)
        self.unknown = firedrake.Function(V)
        self.adjoint = firedrake.Function(V)
        F = solve_residual(block, self.unknown, p.replace_map)
        jacobian = expand_derivatives(
            firedrake.derivative(F, self.unknown, firedrake.TrialFunction(V)))
        (test,) = F.arguments()
        weighted = ufl.replace(F, {test: self.adjoint})
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
                _add_adjoint(bv, value, -1.0)
