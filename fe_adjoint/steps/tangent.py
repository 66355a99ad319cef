"""Tangent-linear models of Firedrake blocks from forms derived once per pattern.

pyadjoint's tangent-linear model of a block re-derives its forms at every call, and a
solve assembles its Jacobian and factorises it afresh with a new solver. Here, per block
pattern (see :mod:`fe_adjoint.steps.patterns`):

* a **solve** ``F(u; x) = 0``: ``dF/du u' = -dF/dx x'``, the Jacobian at the solution
  assembled into one reused matrix, re-assembled only when a value it reads changed (a
  Jacobian of Constants only -- a linear heat step -- is never re-assembled and shares the
  forward replays' factorisation);
* an **assembled scalar** ``j(x)``: ``j' = dj/dx x'``, one assembly;
* a **copy** ``u_old.assign(u)``: the tangent is copied.

Any other block, and any block with a tangent on a value its forms do not read as a
Function (a Constant control, a boundary condition, the mesh), runs pyadjoint's
``evaluate_tlm``. Results equal pyadjoint's to round-off.
"""

from __future__ import annotations

from .operators import solve_into, solve_operator
from .patterns import (
    Assembly,
    FormInputs,
    Placeholders,
    block_pattern,
    copied_function,
    copy_values,
    derived,
    directional,
    homogeneous_bcs,
    solve_residual,
)
from .rules import block_kind


def evaluate_tlm(patterns, block) -> None:
    """Add ``block``'s tangent-linear outputs to its outputs' tangents (a marked pass)."""
    done = _copy_tangent(block) if block_kind(type(block)) == "assign" \
        else _by_pattern(patterns, block)
    if not done:
        block.evaluate_tlm(markings=True)


def tangent_inputs(block, inputs: FormInputs) -> FormInputs | None:
    """``inputs`` with the ones that carry a tangent active; None if pyadjoint must run.

    A non-linear solve's initial guess is not differentiated (its tangent is ignored).
    """
    skip = block.func if block_kind(type(block)) == "solve" and not block.linear else None
    with_tangent = [bv for bv in block.get_dependencies()
                    if bv.tlm_value is not None and bv.output is not skip]
    if any(bv not in inputs.all for bv in with_tangent):
        return None
    return FormInputs(inputs.all, tuple(bv for bv in inputs.all if bv in with_tangent))


def _by_pattern(patterns, block) -> bool:
    pattern = block_pattern(block)
    if pattern is None or len(block.get_outputs()) != 1:
        return False
    inputs = tangent_inputs(block, pattern.inputs)
    if inputs is None:
        return False
    out = block.get_outputs()[0]
    if inputs.active and out.is_control_dependent:
        tangent = derived(patterns, block, pattern, inputs, "tlm", _TANGENTS)
        out.add_tlm_output(tangent.tangent(inputs, out.saved_output))
    return True


def _copy_tangent(block) -> bool:
    from firedrake import Function

    source = copied_function(block)
    if source is None:
        return False
    out = block.get_outputs()[0]
    if source.tlm_value is not None and out.is_control_dependent:
        tangent = Function(out.output.function_space())
        copy_values(tangent, source.tlm_value)
        out.add_tlm_output(tangent)
    return True


def load_tangents(targets, variables) -> None:
    """Copy the tangents of block ``variables`` into ``targets`` (one each); None is zero."""
    for c, bv in zip(targets, variables):
        if bv.tlm_value is None:
            c.zero()
        else:
            copy_values(c, bv.tlm_value)


class _ScalarTangent:
    """``j' = dj/dx x'`` for an assembled scalar ``j``."""

    def __init__(self, patterns, block, inputs: FormInputs):
        import ufl

        self.placeholders = p = Placeholders(inputs, tangents=True)
        self.derivative = Assembly(directional(ufl.replace(block.form, p.replace_map),
                                               p.active, p.first))

    def tangent(self, inputs: FormInputs, value):
        from pyadjoint.adjfloat import AdjFloat

        self.placeholders.load_values(inputs)
        load_tangents(self.placeholders.first, inputs.active)
        return AdjFloat(self.derivative() or 0.0)


class SolveTangent:
    """``dF/du u' = -dF/dx x'`` at the solution ``u`` of ``F(u; x) = 0``.

    The Jacobian is assembled on placeholders into one matrix and factorised by one
    PETSc KSP, both reused while what it reads is unchanged.
    """

    def __init__(self, patterns, block, inputs: FormInputs):
        import firedrake
        from ufl.algorithms import expand_derivatives

        self.space = V = block.function_space
        self.dual = V.dual()
        self.placeholders = p = Placeholders(inputs, tangents=True)
        self.unknown = firedrake.Function(V)
        self.residual = F = solve_residual(block, self.unknown, p.replace_map)
        self.jacobian = expand_derivatives(
            firedrake.derivative(F, self.unknown, firedrake.TrialFunction(V)))
        self.input_change = directional(F, p.active, p.first)  # dF/dx x'
        self.first_rhs = Assembly(-self.input_change)
        self.bcs = homogeneous_bcs(block)
        self.operator = solve_operator(patterns, self.jacobian, block, self.bcs)

    def load(self, inputs: FormInputs, value) -> None:
        """Load the inputs' values and the solution; update the operator if it changed."""
        self.placeholders.load_values(inputs)
        copy_values(self.unknown, value)
        self.operator.update()  # re-assembled if it changed, refactorised at the next solve

    def tangent(self, inputs: FormInputs, value):
        """The solution's tangent for the active inputs' tangents (a new Function)."""
        import firedrake

        self.load(inputs, value)
        load_tangents(self.placeholders.first, inputs.active)
        rhs = self.first_rhs()  # solved for at once: its tensor may be reused
        return firedrake.Function(self.space) if rhs is None else self.solve(rhs)

    def fresh_rhs(self, assembly):
        """A new copy of ``assembly``'s value (its tensor is reused by the next call)."""
        import firedrake

        rhs = firedrake.Cofunction(self.dual)
        value = assembly()
        if value is not None:
            copy_values(rhs, value)
        return rhs

    def solve(self, rhs):
        """``dF/du^-1 rhs`` with homogeneous boundary values, into a new Function."""
        import firedrake

        return solve_into(self.operator.ksp, self.bcs, rhs, firedrake.Function(self.space))


_TANGENTS = {"solve": SolveTangent, "assemble": _ScalarTangent}
