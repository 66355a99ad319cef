"""Reused operators: a solve's (adjoint) Jacobian assembled and factorised once.

One matrix and one PETSc KSP with the block's linear-solver options, re-assembled only when a
value it reads changed; an operator of Constants only is shared by every pattern that has it.
"""

from __future__ import annotations

from .patterns import Assembly, PatternCache, solve_pattern_extra


def flatten_solver_parameters(block) -> dict:
    """The linear-solver options (ksp_*, pc_*, mat_*) of a solve block."""
    from petsctools import flatten_parameters

    given = flatten_parameters(block.forward_kwargs.get("solver_parameters") or {})
    return {key: value for key, value in given.items()
            if key.startswith(("ksp_", "pc_", "mat_"))}


def direct_solver(block, comm):
    """A PETSc KSP with a solve block's linear-solver options (default: Firedrake's LU).

    Returns ``(ksp, mat_type)``.
    """
    from firedrake.petsc import DEFAULT_KSP_PARAMETERS, PETSc
    from petsctools import OptionsManager

    parameters = {**DEFAULT_KSP_PARAMETERS, **flatten_solver_parameters(block)}
    mat_type = parameters.pop("mat_type")
    ksp = PETSc.KSP().create(comm=comm)
    options = OptionsManager(parameters, options_prefix=f"fe_adjoint_{id(ksp)}_")
    options.set_from_options(ksp)
    return ksp, mat_type


def solve_into(ksp, bcs, rhs, solution):
    """Solve with ``ksp`` (operator assembled with ``bcs``) for homogeneous boundary values."""
    for bc in bcs:
        bc.zero(rhs)
    with rhs.dat.vec_ro as b, solution.dat.vec_wo as x:
        ksp.solve(b, x)
    return solution


def solve_operator(patterns: PatternCache, form, block, bcs) -> OperatorReuse:
    """The reused operator of a solve block's Jacobian (or adjoint Jacobian) ``form``.

    An operator that reads no Function, only Constants, is shared by every pattern with
    the same form structure, boundary conditions and solver options: the adjoint of a
    self-adjoint linear step (a Jacobian equal to its adjoint) then reuses the
    factorisation of the forward replays, and the other way round.
    """
    from ufl.algorithms.analysis import extract_coefficients

    def make():
        ksp, mat_type = direct_solver(block, block.function_space.mesh().comm)
        return OperatorReuse(form, ksp, bcs, mat_type)

    if extract_coefficients(form):
        return make()
    options = flatten_solver_parameters(block)
    key = ("operator", form.signature(), tuple(id(c) for c in form.constants()),
           solve_pattern_extra(block)[-1], tuple(sorted(options.items())))
    return patterns.get_or_make(key, make)


def adjoint_solve_operator(patterns: PatternCache, jacobian, adjoint_jacobian, block, bcs):
    """The reused operator of a solve block's adjoint.

    A Jacobian that reads only Constants and assembles to a matrix symmetric to round-off
    (entries equal to 1e-14 of the largest row sum) is its own adjoint: the adjoint then
    shares the forward replays' operator and factorisation (see :func:`solve_operator`).
    """
    from firedrake.petsc import PETSc
    from ufl.algorithms.analysis import extract_coefficients

    if not extract_coefficients(jacobian):
        forward = solve_operator(patterns, jacobian, block, bcs)
        forward.update()
        matrix = forward.matrix.tensor.petscmat
        if matrix.isSymmetric(1e-14 * matrix.norm(PETSc.NormType.INFINITY)):
            return forward
    return solve_operator(patterns, adjoint_jacobian, block, bcs)


class OperatorReuse:
    """A bilinear form assembled into one matrix that ``ksp`` factorises.

    It is re-assembled only when a value it reads (a placeholder or a Constant)
    changed since the last assembly.
    """

    def __init__(self, form, ksp, bcs, mat_type):
        self.ksp = ksp
        self.matrix = Assembly(form, bcs=bcs, mat_type=mat_type)
        self.reads = ReadsWatch(form)

    def update(self) -> None:
        """Re-assemble (and so re-factorise at the next solve) if the operator changed."""
        if self.reads.changed():
            self.ksp.setOperators(self.matrix().petscmat)


class ReadsWatch:
    """Tells whether the values a set of forms reads (Functions, Constants) changed."""

    def __init__(self, *forms):
        from firedrake import Constant
        from ufl.algorithms.analysis import extract_coefficients, extract_type

        self.reads = list({id(c): c for form in forms for c in (
            *extract_coefficients(form), *extract_type(form, Constant))}.values())
        self._versions = None  # the Functions' data versions (PETSc) at the last call
        self._seen = None  # and the values themselves

    def changed(self) -> bool:
        """True at the first call and whenever a value differs from the last call's.

        Functions not written since the last call (same data version) are not compared.
        """
        import numpy as np

        versions = [getattr(c.dat, "dat_version", None) for c in self.reads]
        current = [np.array(c.dat.data_ro, copy=True) if version is None or self._seen is None
                   or version != self._versions[i] else self._seen[i]
                   for i, (c, version) in enumerate(zip(self.reads, versions))]
        self._versions = versions
        if self._seen is not None and all(
                a is b or np.array_equal(a, b) for a, b in zip(current, self._seen)):
            return False
        self._seen = current
        return True
