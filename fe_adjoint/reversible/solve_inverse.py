"""An explicit linear solve run backwards: the one input it cannot read, from its output.

A leapfrog step solves ``M u_(n+1) = b(u_n, u_(n-1))`` with a diagonal (lumped) ``M`` and
a right-hand side affine in its inputs. With the residual written as matrices times inputs
(:mod:`fe_adjoint.steps.affine`), ``F = A u + sum_w J_w w + r = 0`` gives the input ``t``
the step overwrote: ``J_t t = -(A u + sum_(w != t) J_w w + r)``, one solve with ``J_t``
(factorised once; for the FWI demo a lumped mass matrix plus a boundary term).

Unstable rows: a row of ``J_t`` that is not one diagonal entry at least as large as the
output's (``A``'s). The FWI demo's absorbing boundary term gives ``u_(n-1)`` the weight
``M/dt^2 - C/dt`` there (``C`` a boundary mass matrix) against ``M/dt^2`` for ``u_(n+1)``,
and running backwards multiplies the round-off on those rows every step. Those rows of
``t`` are side data: the forward stores them per step (:meth:`SolveInverse.side_data`),
and backwards ``t`` is ``-rest / diag(J_t)`` on the other rows and the stored values on
these. Where they are more than a quarter of the state (damping everywhere), they are not
stored: ``t`` is solved for with ``J_t`` and the drift check decides.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigurationError
from ..steps.affine import AffineResidual, diagonal_rows
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


RUNS_BACKWARDS = ("The reversible schedule runs copies, pointwise affine assignments and "
                  "explicit linear solves (a "
                  "diagonal, lumped mass matrix, no Dirichlet conditions) backwards; "
                  "declare the step's inverse (ReversibleSchedule(..., inverse="
                  "fe_adjoint.DeclaredInverse(states, backwards))) or use another schedule")


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
    """Recovers any affine input of a solve (of one pattern) from its output."""

    def __init__(self, block, inputs):
        import firedrake

        check_solve(block)
        V = block.function_space
        self.placeholders = p = Placeholders(inputs)
        self.unknown = firedrake.Function(V)
        self.affine = AffineResidual(solve_residual(block, self.unknown, p.replace_map), V,
                                     diagonal_in=self.unknown)
        if not self.affine.usable:
            raise refusal(block, "its residual is not affine in its inputs")
        self._solvers: dict = {}  # id(input) -> (its matrix, a KSP factorising it)
        self._splits: tuple = (None, {})  # (matrices, id(input) -> _split_rows)

    @staticmethod
    def key(patterns, block, inputs) -> tuple:
        return patterns.key("solve-inverse", (block.lhs, block.rhs), inputs,
                            *solve_pattern_extra(block))

    def side_data(self, block, inputs) -> dict:
        """``{target: values}``: each input's values on its unstable rows (see the module)."""
        self.placeholders.load_values(inputs)
        if self.affine.current_matrices() is None:
            return {}
        side = {}
        for target, c in enumerate(self.placeholders.values):
            split = self._split(c)
            if split is not None:
                with c.dat.vec_ro as x:
                    side[target] = x.array_r[split[0]].copy()
        return side

    def run(self, block, inputs, value_of, target: int, side: dict):
        """Input ``target``'s value for ``block`` (of this pattern).

        ``value_of(bv)`` gives every other input's value and the output's; ``side`` is
        what :meth:`side_data` gave in the forward.
        """
        import firedrake

        t = self.placeholders.values[target]
        if t not in self.affine.inputs:
            raise refusal(block, "its residual is not affine in the input it overwrote")
        for c, bv in zip(self.placeholders.values, inputs.all):
            if c is not t:
                copy_values(c, value_of(bv))
        t.zero()
        copy_values(self.unknown, value_of(block.get_outputs()[0]))
        residual = self.affine()
        if residual is None:
            raise refusal(block, "its matrices change at every step")
        result = firedrake.Function(t.function_space())
        split = self._split(t)
        if split is None:  # no side data: solve with J_t
            self._solve(t, residual, result, block)
            return result
        rows, inverse_diagonal = split
        if rows.size and target not in side:
            raise refusal(block, "the forward did not store its unstable rows")
        with residual.dat.vec_ro as b, result.dat.vec_wo as x:
            x.pointwiseMult(b, inverse_diagonal)
            x.scale(-1.0)
            if rows.size:
                x.array[rows] = side[target]
        return result

    def _solve(self, t, residual, result, block) -> None:
        from firedrake.petsc import PETSc

        matrix = self.affine.matrices[self.affine.inputs.index(t)]
        known = self._solvers.get(id(t))
        if known is None or known[0] is not matrix:
            ksp = PETSc.KSP().create(comm=matrix.comm)
            ksp.setType("preonly")
            pc = ksp.getPC()
            pc.setType("lu")
            if matrix.comm.size > 1:
                pc.setFactorSolverType("mumps")
            ksp.setOperators(matrix)
            self._solvers[id(t)] = known = (matrix, ksp)
        ksp = known[1]
        with residual.dat.vec_ro as b, result.dat.vec_wo as x:
            ksp.solve(b, x)
            x.scale(-1.0)
        if ksp.getConvergedReason() < 0:
            raise refusal(block, "the matrix of the input it overwrote is singular")

    def _split(self, t):
        """``(unstable rows, 1 / J_t's diagonal elsewhere)`` for input ``t``, or None.

        None where ``t`` has no side data: its unstable rows are none or too many.
        """
        matrices, splits = self._splits
        if matrices is not self.affine.matrices:
            self._splits = matrices, splits = self.affine.matrices, {}
        if id(t) not in splits:
            splits[id(t)] = _split_rows(self.affine, t)
        return splits[id(t)]


def _split_rows(affine, t):
    """See :meth:`SolveInverse._split`.

    A row of ``J_t`` that is not one diagonal entry at least as large as the output's
    (``A``'s) is unstable backwards.
    """
    from mpi4py import MPI

    if t not in affine.inputs or t is affine.diagonal_in:
        return None
    matrix = affine.matrices[affine.inputs.index(t)]
    output = affine.matrices[affine.inputs.index(affine.diagonal_in)].getDiagonal().array_r
    diagonal = matrix.getDiagonal()
    weight = diagonal.array_r
    stable = diagonal_rows(matrix) & (np.abs(weight) >= np.abs(output) * (1 - 1e-8)) \
        & (weight != 0)
    rows = np.flatnonzero(~stable)
    total = matrix.comm.tompi4py().allreduce(np.array([rows.size, weight.size]), op=MPI.SUM)
    if total[0] == 0 or total[0] > SIDE_FRACTION * total[1]:
        return None  # damping everywhere is left to the drift check
    diagonal.array[rows] = 1.0  # the reciprocal, zero on the unstable rows
    diagonal.reciprocal()
    diagonal.array[rows] = 0.0
    return rows, diagonal


SIDE_FRACTION = 0.25  # the largest share of a state kept per step as side data
