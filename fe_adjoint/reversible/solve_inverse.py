"""An explicit linear solve run backwards: the one input it cannot read, from its output.

A leapfrog step solves ``M u_(n+1) = b(u_n, u_(n-1))`` with a diagonal (lumped) ``M`` and
a right-hand side affine in its inputs. With the residual written as matrices times inputs
(:mod:`fe_adjoint.steps.affine`), ``F = A u + sum_w J_w w + r = 0`` gives the input ``t``
the step overwrote: ``J_t t = -(A u + sum_(w != t) J_w w + r)``, one solve with ``J_t``
(factorised once; for the FWI demo a lumped mass matrix plus a boundary term).
"""

from __future__ import annotations

from ..errors import ConfigurationError
from ..steps.affine import AffineResidual
from ..steps.patterns import (
    Placeholders,
    copy_values,
    form_inputs,
    plain_solve,
    solve_pattern_extra,
    solve_residual,
)


def solve_inputs(block):
    """The inputs of a solve's residual (its initial guess excepted)."""
    return form_inputs(block, (), skip=(block.func,))


RUNS_BACKWARDS = ("The reversible schedule runs copies and explicit linear solves (a "
                  "diagonal, lumped mass matrix, no Dirichlet conditions) backwards; use "
                  "another schedule for this run")


def refusal(block, why: str) -> ConfigurationError:
    """The error refusing to run ``block`` backwards, saying ``why``."""
    return ConfigurationError(f"{block} cannot be run backwards: {why}. {RUNS_BACKWARDS}")


def check_solve(block) -> None:
    """Refuse a solve block that cannot be inverted, whatever its values."""
    from firedrake.adjoint_utils.blocks.solving import (
        NonlinearVariationalSolveBlock,
        SolveVarFormBlock,
    )

    if type(block) not in (NonlinearVariationalSolveBlock, SolveVarFormBlock) \
            or len(block.get_outputs()) != 1 or not plain_solve(block):
        raise refusal(block, "it is not a plain variational solve")
    if block.bcs:
        raise refusal(block, "its Dirichlet conditions overwrite values that are then lost")


class SolveInverse:
    """Recovers input ``target`` (a position in :func:`solve_inputs`) of a solve from its output."""

    def __init__(self, block, inputs, target: int):
        import firedrake
        from firedrake.petsc import PETSc

        check_solve(block)
        V = block.function_space
        self.placeholders = p = Placeholders(inputs)
        self.unknown = firedrake.Function(V)
        self.target = p.values[target]
        self.affine = AffineResidual(solve_residual(block, self.unknown, p.replace_map), V,
                                     diagonal_in=self.unknown)
        if not self.affine.usable or self.target not in self.affine.inputs:
            raise refusal(block, "its residual is not affine in the input it overwrote")
        self.block = block  # named in refusals
        self.ksp = PETSc.KSP().create(comm=V.mesh().comm)
        self.ksp.setType("preonly")
        pc = self.ksp.getPC()
        pc.setType("lu")
        if V.mesh().comm.size > 1:
            pc.setFactorSolverType("mumps")
        self._factorised = None

    @staticmethod
    def key(patterns, block, inputs, target: int) -> tuple:
        return patterns.key("solve-inverse", (block.lhs, block.rhs), inputs,
                            *solve_pattern_extra(block), target)

    def run(self, block, inputs, value_of):
        """The target input's value for ``block`` (of this pattern).

        ``value_of(bv)`` gives every other input's value and the output's.
        """
        import firedrake

        for c, bv in zip(self.placeholders.values, inputs.all):
            if c is self.target:
                c.zero()
            else:
                copy_values(c, value_of(bv))
        copy_values(self.unknown, value_of(block.get_outputs()[0]))
        residual = self.affine()
        if residual is None:
            raise refusal(self.block, "its matrices change at every step")
        matrix = self.affine.matrices[self.affine.inputs.index(self.target)]
        if matrix is not self._factorised:
            self.ksp.setOperators(matrix)
            self._factorised = matrix
        result = firedrake.Function(self.target.function_space())
        with residual.dat.vec_ro as b, result.dat.vec_wo as x:
            self.ksp.solve(b, x)
            x.scale(-1.0)
        if self.ksp.getConvergedReason() < 0:
            raise refusal(self.block, "the matrix of the input it overwrote is singular")
        return result
