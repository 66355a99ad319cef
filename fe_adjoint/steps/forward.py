"""Forward replays through per-pattern forms: linear solves, copies, assembled scalars.

pyadjoint's replay of a block re-derives its forms (``ufl.replace`` of every
coefficient) and pre-processes them for assembly at every step, and a solve
re-assembles and re-factorises its operator even when it cannot have changed. Here,
per block pattern (see :mod:`fe_adjoint.patterns`):

* a **linear solve** (its Jacobian does not read the unknown) solves
  ``J du = F(u0)``, ``u = u0 - du`` from ``u0`` = the step's boundary values, with
  ``J`` assembled and factorised once and again only when a value it reads changed; an
  explicit step (``J`` diagonal, no Dirichlet conditions) is ``u = -J^-1 F|_(u=0)``, with
  ``F`` as matrices times the inputs and ``J^-1`` one pointwise product (:mod:`.affine`);
* an **assembled scalar** is one call of a cached assembler;
* a **copy** ``u_old.assign(u)`` is one vector copy.

* a **non-linear solve** (NonlinearVariationalSolver, Dirichlet conditions on the whole
  space) replays through one Firedrake solver made once per pattern on placeholders, with
  the block's solver parameters and initial guess: the same Newton iterations, without
  re-deriving forms at every step.

Everything else replays through pyadjoint (``block.recompute()``).
"""

from __future__ import annotations

from ..checkpointing.pool import ValuePool
from .affine import AffineResidual
from .operators import solve_into, solve_operator
from .patterns import (
    Assembly,
    FormInputs,
    PatternCache,
    Placeholders,
    copied_function,
    copy_values,
    form_inputs,
    homogeneous_bcs,
    plain_solve,
    solve_pattern_extra,
    solve_residual,
)
from .rules import block_kind
from .tangent import evaluate_tlm


class FastForward:
    """Replays blocks through per-pattern forms where it can (pyadjoint's otherwise)."""

    def __init__(self, patterns: PatternCache, pool: ValuePool):
        self.patterns = patterns
        self.pool = pool

    def recompute(self, block) -> None:
        """Recompute ``block``'s outputs into new values (from the pool)."""
        rule = _RULES.get(block_kind(type(block)))
        value = None if rule is None else rule(self.patterns, self.pool, block)
        if value is None:
            block.recompute()
        else:
            block.get_outputs()[0].checkpoint = value

    def evaluate_tlm(self, block) -> None:
        """Add ``block``'s tangent-linear outputs to its outputs' tangents (a marked pass)."""
        evaluate_tlm(self.patterns, block)


def _solve_rule(patterns, pool, block):
    from firedrake import Function

    if not _replayable(block):
        return None
    inputs = form_inputs(block, (), skip=() if block.linear else (block.func,))
    key = patterns.key("solve-forward", (block.lhs, block.rhs), inputs,
                       *solve_pattern_extra(block))
    pattern = patterns.get_or_make(key, lambda: _LinearSolve(patterns, block, inputs))
    if pattern.linear:
        return pattern.solve(block, inputs, pool.new(Function, block.function_space))
    if not _newton_replayable(block):
        return None
    key = patterns.key("solve-forward-newton", (block.lhs, block.problem_J), inputs,
                       *solve_pattern_extra(block))
    return patterns.get_or_make(key, lambda: _NewtonSolve(block, inputs)).solve(block, inputs)


def _newton_replayable(block) -> bool:
    from firedrake import DirichletBC
    from firedrake.adjoint_utils.blocks.solving import NonlinearVariationalSolveBlock

    return type(block) is NonlinearVariationalSolveBlock and all(
        isinstance(bc, DirichletBC) and not bc._indices for bc in block.bcs)


def _assemble_rule(patterns, pool, block):
    from firedrake import Cofunction
    from pyadjoint.overloaded_type import create_overloaded_object

    from .form_sums import cofunction_sum

    if len(block.form.arguments()) != 0:  # a Cofunction re-assigned: r(t) * q
        saved = {id(bv.output): bv for bv in block.get_dependencies()}
        return cofunction_sum(block.form, lambda c: saved[id(c)].saved_output, saved,
                              lambda space: pool.new(Cofunction, space))
    inputs = form_inputs(block, ())
    key = patterns.key("assemble-forward", (block.form,), inputs)
    pattern = patterns.get_or_make(key, lambda: _Scalar(block.form, inputs))
    return create_overloaded_object(pattern.evaluate(inputs))


def _copy_rule(patterns, pool, block):
    from firedrake import Function

    source = copied_function(block)
    if source is None:
        return None
    value = pool.new(Function, source.output.function_space())
    copy_values(value, source.saved_output)
    return value


_RULES = {"solve": _solve_rule, "assemble": _assemble_rule, "assign": _copy_rule}


class _Scalar:
    """An assembled scalar on placeholders."""

    def __init__(self, form, inputs: FormInputs):
        import ufl

        self.placeholders = p = Placeholders(inputs)
        self.form = Assembly(ufl.replace(form, p.replace_map))

    def evaluate(self, inputs: FormInputs) -> float:
        self.placeholders.load_values(inputs)
        value = self.form()
        return 0.0 if value is None else value


def _replayable(block) -> bool:
    from firedrake.adjoint_utils.blocks.solving import (
        NonlinearVariationalSolveBlock,
        SolveVarFormBlock,
    )

    return type(block) in (NonlinearVariationalSolveBlock, SolveVarFormBlock) \
        and len(block.get_outputs()) == 1 and plain_solve(block)


class _LinearSolve:
    """``u = u0 - J^-1 F(u0)`` for a residual ``F`` linear in ``u``."""

    def __init__(self, patterns, block, inputs: FormInputs):
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
        self.operator = solve_operator(patterns, jacobian, block, self.bcs)
        self.residual = Assembly(F)
        self.affine = AffineResidual(F, V, diagonal_in=self.unknown)
        self.correction = firedrake.Function(V)

    def solve(self, block, inputs: FormInputs, result):
        """Solve into ``result`` (its entries overwritten)."""
        self.placeholders.load_values(inputs)
        if not self.bcs and self.affine.usable and self.affine.solve(result):
            return result  # an explicit step: one pointwise product
        _load_initial_guess(block, self.unknown)  # as the taped solver started: same rounding
        for bc in block._recover_bcs():  # the boundary values of this step
            bc.apply(self.unknown)
        self.operator.update()
        residual = self.affine() if self.affine.usable else None
        if residual is None:
            residual = self.residual()
        if residual is not None:
            solve_into(self.operator.ksp, self.bcs, residual, self.correction)
            with self.unknown.dat.vec as u, self.correction.dat.vec_ro as du:
                u.axpy(-1.0, du)
        copy_values(result, self.unknown)
        return result


def _load_initial_guess(block, unknown) -> None:
    """Start from the solve's initial guess: the unknown's value before it.

    A dependency for a variational solver; for ``solve(a == L, u)`` the live ``u``, which
    the block's read plan has just given its taped value (see :mod:`fe_adjoint.tape.reads`).
    """
    guess = next((bv for bv in block.get_dependencies() if bv.output is block.func), None)
    copy_values(unknown, block.func if guess is None else guess.saved_output)


class _NewtonSolve:
    """A non-linear solve replayed by one Firedrake solver made once per pattern.

    The solver is built on placeholders with the block's solver parameters: the same
    Newton iterations as pyadjoint's replay, without re-deriving forms at every step.
    """

    def __init__(self, block, inputs: FormInputs):
        import firedrake
        import ufl

        V = block.function_space
        self.placeholders = p = Placeholders(inputs)
        self.unknown = firedrake.Function(V)
        replace_map = {**p.replace_map, block.func: self.unknown}
        self.boundary_values = [firedrake.Function(V) for _ in block.bcs]
        bcs = [firedrake.DirichletBC(V, g, bc.sub_domain)
               for bc, g in zip(block.bcs, self.boundary_values)]
        J = None if block.problem_J is None else ufl.replace(block.problem_J, replace_map)
        problem = firedrake.NonlinearVariationalProblem(
            ufl.replace(block.lhs, replace_map), self.unknown, bcs=bcs, J=J)
        parameters = dict(block.forward_kwargs.get("solver_parameters") or {})
        self.solver = firedrake.NonlinearVariationalSolver(problem,
                                                           solver_parameters=parameters)

    def solve(self, block, inputs: FormInputs):
        import firedrake
        from pyadjoint.tape import stop_annotating

        self.placeholders.load_values(inputs)
        _load_initial_guess(block, self.unknown)
        for g, bc in zip(self.boundary_values, block._recover_bcs()):
            g.zero()
            bc.apply(g)
        with stop_annotating():
            self.solver.solve()
        result = firedrake.Function(block.function_space)
        copy_values(result, self.unknown)
        return result
