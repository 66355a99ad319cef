"""Forward replays of linear solves with a reused operator and factorisation.

A replayed solve block normally re-assembles and re-factorises its operator at every
step, even when it cannot have changed (a linear heat equation). For a solve whose
residual is linear in the unknown (its Jacobian does not read the unknown), this
module solves ``J du = F(u0)``, ``u = u0 - du`` from ``u0`` = the boundary values,
with ``J`` assembled and factorised once per pattern and again only when a value it
reads has changed. Other blocks replay through pyadjoint (``block.recompute()``).
"""

from __future__ import annotations

from .patterns import (
    Assembly,
    FormInputs,
    OperatorReuse,
    PatternCache,
    Placeholders,
    copy_values,
    direct_solver,
    form_inputs,
    homogeneous_bcs,
    plain_solve,
    solve_into,
    solve_pattern_extra,
    solve_residual,
)
from .rules import block_kind


class FastForward:
    """Replays blocks, linear solves through per-pattern operators (pyadjoint's otherwise)."""

    def __init__(self, patterns: PatternCache):
        self.patterns = patterns

    def recompute(self, block) -> None:
        """Recompute ``block``'s outputs into new values."""
        if block_kind(type(block)) != "solve" or not _replayable(block):
            block.recompute()
            return
        inputs = form_inputs(block, (), skip=() if block.linear else (block.func,))
        key = self.patterns.key("solve-forward", (block.lhs, block.rhs), inputs,
                                *solve_pattern_extra(block))
        pattern = self.patterns.get_or_make(key, lambda: _LinearSolve(block, inputs))
        out = block.get_outputs()[0]
        if pattern.linear:
            out.checkpoint = pattern.solve(block, inputs)
        else:
            block.recompute()


def _replayable(block) -> bool:
    from firedrake.adjoint_utils.blocks.solving import (
        NonlinearVariationalSolveBlock,
        SolveVarFormBlock,
    )

    return type(block) in (NonlinearVariationalSolveBlock, SolveVarFormBlock) \
        and len(block.get_outputs()) == 1 and plain_solve(block)


class _LinearSolve:
    """``u = u0 - J^-1 F(u0)`` for a residual ``F`` linear in ``u``."""

    def __init__(self, block, inputs: FormInputs):
        import firedrake
        from ufl.algorithms import expand_derivatives
        from ufl.algorithms.analysis import extract_coefficients

        self.space = V = block.function_space
        self.placeholders = p = Placeholders(inputs)
        self.unknown = firedrake.Function(V)
        F = solve_residual(block, self.unknown, p.replace_map)
        jacobian = expand_derivatives(
            firedrake.derivative(F, self.unknown, firedrake.TrialFunction(V)))
        self.linear = self.unknown not in extract_coefficients(jacobian)
        if not self.linear:
            return
        self.bcs = homogeneous_bcs(block)
        self.ksp, mat_type = direct_solver(block, V.mesh().comm)
        self.operator = OperatorReuse(jacobian, self.ksp, self.bcs, mat_type)
        self.residual = Assembly(F)
        self.correction = firedrake.Function(V)

    def solve(self, block, inputs: FormInputs):
        import firedrake

        self.placeholders.load_values(inputs)
        self.unknown.zero()
        for bc in block._recover_bcs():  # the boundary values of this step
            bc.apply(self.unknown)
        self.operator.update()
        residual = self.residual()
        if residual is not None:
            solve_into(self.ksp, self.bcs, residual, self.correction)
            with self.unknown.dat.vec as u, self.correction.dat.vec_ro as du:
                u.axpy(-1.0, du)
        result = firedrake.Function(self.space)
        copy_values(result, self.unknown)
        return result
