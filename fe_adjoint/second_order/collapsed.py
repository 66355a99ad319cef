"""Collapsed second-order forward propagation (Taylor mode) through the blocks of a tape.

For directions ``v_1 .. v_R`` of the controls every value ``y = f(x)`` of the run
carries R first-order tangents and ONE collapsed second-order tangent
(Dangel et al. 2025)::

    y'_r = f'(x) x'_r                                  r = 1 .. R
    y''  = sum_r f''(x)[x'_r, x'_r] + f'(x) x''

so the functional's ``y''`` is ``sum_r <v_r, H v_r>``. For a solve ``F(y; x) = 0``
both are linear systems with the step's Jacobian ``dF/dy``::

    dF/dy y'_r = -dF/dx x'_r                                       (R solves)
    dF/dy y''  = -sum_r D2F[(y'_r, x'_r), (y'_r, x'_r)] - dF/dx x''  (ONE solve)

The Jacobian is assembled once per step into the same matrix and factorised once:
one PETSc KSP serves the R + 1 solves. The derivative forms of a block are derived
symbolically once per *pattern* (the same form over the same inputs) on placeholder
Functions, into which each step's values are copied, so Firedrake reuses its compiled
kernels and assemblers from step to step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..steps.patterns import (
    Assembly,
    FormInputs,
    PatternCache,
    Placeholders,
    axpy,
    copy_values,
    directional,
    form_inputs,
    is_zero,
    plain_solve,
    solve_pattern_extra,
)
from ..steps.rules import block_kind
from ..steps.tangent import SolveTangent


@dataclass
class Jet:
    """The R first-order tangents and the collapsed second-order tangent of one value."""

    first: list
    second: Any = None  # None: zero


class CollapsedPropagator:
    """Propagates jets block by block during a forward sweep and frees them when unread.

    Parameters
    ----------
    index
        The tape's :class:`~fe_adjoint.classify.TapeIndex` (when a value is read last).
    n_directions
        R, the number of directions propagated together.
    patterns
        A cache of derived forms, kept across calls (see :class:`PatternCache`).
    """

    def __init__(self, index, n_directions: int, patterns: PatternCache):
        self.index = index
        self.n_directions = n_directions
        self.patterns = patterns
        self.jets: dict = {}
        self.kept: set = set()
        self.solves = Counter()  # "tangent", "second_order"
        self.peak_jets = 0

    def seed(self, bv, directions: list) -> None:
        """Give a control's block variable its R directions (second-order tangent zero)."""
        self.jets[bv] = Jet([_like(bv.output, d) for d in directions])
        self.kept.add(bv)

    def keep(self, bv) -> None:
        """Keep the jet of ``bv`` (the functional) until the sweep ends."""
        self.kept.add(bv)

    def block_done(self, block) -> None:
        """Propagate the jets of ``block``'s inputs to its outputs; the block has just run."""
        active = [bv for bv in block.get_dependencies() if bv in self.jets]
        if not active:
            return
        rule = _RULES.get(block_kind(type(block)))
        if rule is None:
            raise ConfigurationError(
                f"hessian_trace has no second-order rule for {type(block).__name__} "
                f"({block}); supported: solves, assemble to a scalar, assign, AdjFloat "
                "arithmetic. Compute Hessian actions with Jhat.hessian instead"
            )
        rule(self, block, active)
        self.peak_jets = max(self.peak_jets, len(self.jets))

    def step_done(self, n: int) -> None:
        """Free the jets nobody reads after step ``n``."""
        for bv in [bv for bv in self.jets
                   if bv not in self.kept and self.index.last_read(bv) <= n]:
            del self.jets[bv]


# -- rules ---------------------------------------------------------------------------------
def _solve_rule(propagator, block, active) -> None:
    from firedrake import DirichletBC

    if any(isinstance(bv.output, DirichletBC) for bv in active):
        raise ConfigurationError(
            "hessian_trace: a boundary condition value depends on the controls; this is not "
            "supported yet. Compute Hessian actions with Jhat.hessian instead"
        )
    if not plain_solve(block):
        raise ConfigurationError(
            f"hessian_trace: {block} uses a null space, an application context or form "
            "compiler parameters, which its tangent solves do not reproduce yet"
        )
    inputs = form_inputs(block, active, skip=() if block.linear else (block.func,))
    key = propagator.patterns.key("solve", (block.lhs, block.rhs), inputs,
                                  *solve_pattern_extra(block))
    patterns = propagator.patterns
    pattern = patterns.get_or_make(key, lambda: _SolvePattern(patterns, block, inputs))
    out = block.get_outputs()[0]
    jets = [propagator.jets[bv] for bv in inputs.active]
    propagator.jets[out] = pattern.propagate(inputs, jets, out.saved_output,
                                             propagator.n_directions, propagator.solves)


def _assemble_rule(propagator, block, active) -> None:
    if len(block.form.arguments()) != 0:
        raise ConfigurationError(
            "hessian_trace supports assembled scalars (functionals); "
            f"got an assembled {len(block.form.arguments())}-form: {block}"
        )
    inputs = form_inputs(block, active)
    key = propagator.patterns.key("assemble", (block.form,), inputs)
    pattern = propagator.patterns.get_or_make(
        key, lambda: _ExpressionPattern(block.form, inputs, _scalar_evaluator))
    jets = [propagator.jets[bv] for bv in inputs.active]
    out = block.get_outputs()[0]
    propagator.jets[out] = pattern.propagate(inputs, jets, propagator.n_directions)


def _assign_rule(propagator, block, active) -> None:
    out = block.get_outputs()[0]
    if block.expr is None:  # a copy: the jet passes through
        jet = propagator.jets[active[0]]
        propagator.jets[out] = Jet([_like(out.output, t) for t in jet.first],
                                   None if jet.second is None else _like(out.output, jet.second))
        return
    inputs = form_inputs(block, active)
    space = out.output.function_space()
    key = propagator.patterns.key("assign", (block.expr,), inputs, id(space))
    pattern = propagator.patterns.get_or_make(
        key, lambda: _ExpressionPattern(block.expr, inputs,
                                        lambda e: (lambda: _assign_into(space, e))))
    jets = [propagator.jets[bv] for bv in inputs.active]
    propagator.jets[out] = pattern.propagate(inputs, jets, propagator.n_directions)


def _float_rule(propagator, block, active) -> None:
    values = [bv.saved_output for bv in block.get_dependencies()]
    positions = [i for i, bv in enumerate(block.get_dependencies()) if bv in propagator.jets]
    jets = {i: propagator.jets[block.get_dependencies()[i]] for i in positions}
    operator = block._operator
    first_derivatives = {i: operator.codegen(diff=(i,))(*values) for i in positions}
    first = [
        sum(first_derivatives[i] * float(jets[i].first[r]) for i in positions)
        for r in range(propagator.n_directions)
    ]
    second = sum(first_derivatives[i] * float(jets[i].second)
                 for i in positions if jets[i].second is not None)
    for i in positions:
        for j in positions:
            curvature = operator.codegen(diff=(i, j))(*values)
            if curvature != 0:
                second += curvature * sum(float(jets[i].first[r]) * float(jets[j].first[r])
                                          for r in range(propagator.n_directions))
    propagator.jets[block.get_outputs()[0]] = Jet(first, second)


def _constant_rule(propagator, block, active) -> None:
    raise ConfigurationError(
        "hessian_trace: a Constant is assigned a value that depends on the controls; "
        "Firedrake forms read Constants live, so use a Function on the 'R' space instead"
    )


_RULES = {
    "solve": _solve_rule,
    "assemble": _assemble_rule,
    "assign": _assign_rule,
    "float": _float_rule,
    "constant": _constant_rule,
}


# -- patterns ------------------------------------------------------------------------------
class _ExpressionPattern:
    """Jets of ``y = f(x)`` for an assembled form or a pointwise expression ``f``.

    ``evaluator(expression)`` makes, once, a callable giving the expression's value.
    """

    def __init__(self, expression, inputs: FormInputs, evaluator):
        import ufl

        self.placeholders = p = Placeholders(inputs, tangents=True)
        f = ufl.replace(expression, p.replace_map)
        first = directional(f, p.active, p.first)
        self.first = evaluator(first)
        curvature = None if is_zero(first) else directional(first, p.active, p.first)
        self.curvature = None if curvature is None or is_zero(curvature) \
            else evaluator(curvature)
        self.second = evaluator(directional(f, p.active, p.second))

    def propagate(self, inputs, jets, n_directions: int) -> Jet:
        p = self.placeholders
        p.load_values(inputs)
        first = []
        second = None
        for r in range(n_directions):
            p.load_first(jets, r)
            first.append(self.first())
            if self.curvature is not None:
                second = _add(second, self.curvature())
        if p.load_second(jets):
            second = _add(second, self.second())
        return Jet(first, second)


class _SolvePattern(SolveTangent):
    """Jets of the solution of ``F(y; x) = 0``: R tangent solves and one second-order solve."""

    def __init__(self, patterns, block, inputs: FormInputs):
        import firedrake

        super().__init__(patterns, block, inputs)
        p = self.placeholders
        self.unknown_direction = firedrake.Function(self.space)
        change = directional(self.residual, [self.unknown], [self.unknown_direction]) \
            + self.input_change
        self.curvature = Assembly(directional(
            change, [self.unknown, *p.active], [self.unknown_direction, *p.first]))
        self.second_rhs = Assembly(-directional(self.residual, p.active, p.second))

    def propagate(self, inputs, jets, out_value, n_directions: int, counter: Counter) -> Jet:
        import firedrake

        p = self.placeholders
        self.load(inputs, out_value)
        first = []
        for r in range(n_directions):
            p.load_first(jets, r)
            first.append(self.solve(self.fresh_rhs(self.first_rhs)))
            counter["tangent"] += 1
        rhs = None
        if p.load_second(jets):
            rhs = self.fresh_rhs(self.second_rhs)
        if self.curvature.rank is not None:
            for r in range(n_directions):
                p.load_first(jets, r)
                copy_values(self.unknown_direction, first[r])
                curvature = self.curvature()
                if rhs is None:
                    rhs = firedrake.Cofunction(curvature.function_space())
                axpy(rhs, -1.0, curvature)
        if rhs is None:
            return Jet(first)
        counter["second_order"] += 1
        return Jet(first, self.solve(rhs))


# -- values --------------------------------------------------------------------------------
def _scalar_evaluator(form):
    assembly = Assembly(form)
    return lambda: assembly() or 0.0  # a vanished form is 0


def _assign_into(space, expression):
    import firedrake

    out = firedrake.Function(space)
    if not is_zero(expression):
        out.assign(expression)
    return out


def _like(target, value):
    """``value`` as a value of ``target``'s kind.

    A number or an expression given for a Function becomes a Function of its space.
    """
    import firedrake

    if isinstance(target, firedrake.Function) and not isinstance(value, firedrake.Function):
        return firedrake.Function(target.function_space()).assign(value)
    return value


def _add(total, value):
    if total is None:
        return value
    if isinstance(total, float):
        return total + value
    axpy(total, 1.0, value)
    return total


