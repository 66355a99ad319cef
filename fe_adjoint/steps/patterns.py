"""Derive a block's forms once per *pattern* and re-assemble them on each step's values.

A pattern is what makes two blocks interchangeable for derived forms: the
structure of their forms (UFL signature, or an expression's text), the Constants
they read, the spaces of their inputs, and which inputs are differentiated. The
derived forms are written on :class:`Placeholders` -- Functions into which each
step copies its values -- so one set of forms (and Firedrake's compiled kernels and
cached assemblers, matrices and PETSc solvers) serves every step of a pattern.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import ConfigurationError
from .rules import block_kind


class PatternCache(OrderedDict):
    """Derived forms (and their matrices and solvers) by pattern key.

    The least recently used are dropped beyond ``maxsize``, so a script that builds
    new Functions every step stays bounded.
    """

    def __init__(self, maxsize: int = 64):
        super().__init__()
        self.maxsize = maxsize

    @staticmethod
    def key(kind: str, expressions, inputs: FormInputs, *extra) -> tuple:
        """The pattern key of a block for the derivation ``kind``.

        The structure of its forms (UFL signature, or an expression's text), the
        Constants they read, the spaces of its inputs, ``extra``, and the positions of
        the active inputs.
        """
        return (kind, *_structure(expressions, inputs), *extra, inputs.active_positions)

    def get_or_make(self, key, make):
        pattern = self.get(key)
        if pattern is None:
            pattern = self[key] = make()
            if len(self) > self.maxsize:
                self.popitem(last=False)
        self.move_to_end(key)
        return pattern


def _structure(expressions, inputs: FormInputs) -> tuple:
    """Form signatures (or expression texts), Constants read, and input spaces."""
    import ufl
    from firedrake import Constant
    from ufl.algorithms.analysis import extract_type

    parts = []
    for e in expressions:
        if isinstance(e, ufl.form.Form):  # both cached on the form
            parts += [e.signature(), tuple(id(c) for c in e.constants())]
        elif isinstance(e, (ufl.core.expr.Expr, ufl.form.BaseForm)):
            parts += _text_and_constants(e, lambda e: (
                str(e), tuple(sorted(id(c) for c in extract_type(e, Constant)))))
        else:
            parts.append(e)  # a plain number
    spaces = tuple(id(bv.output.function_space()) for bv in inputs.all)
    return (*parts, spaces)


_TEXTS: OrderedDict = OrderedDict()  # id(expression) -> (expression, its text, Constants)


def _text_and_constants(e, compute) -> tuple:
    """``compute(e)`` for an expression or form sum, cached.

    Printing one takes a millisecond and every replayed step asks again; the expression
    is held, so its id is not reused while cached.
    """
    found = _TEXTS.get(id(e))
    if found is None or found[0] is not e:
        found = _TEXTS[id(e)] = (e, *compute(e))
        if len(_TEXTS) > 256:
            _TEXTS.popitem(last=False)
    return list(found[1:])


@dataclass(frozen=True)
class FormInputs:
    """The block variables whose values appear in a block's form, and the differentiated ones."""

    all: tuple
    active: tuple

    @property
    def active_positions(self) -> tuple:
        return tuple(self.all.index(bv) for bv in self.active)


def form_inputs(block, active, skip=()) -> FormInputs:
    """The Function and Cofunction inputs of ``block`` (less ``skip``).

    ``active`` (the inputs to differentiate) must be among them.
    """
    from firedrake import Cofunction, Function

    inputs = tuple(bv for bv in block.get_dependencies()
                   if isinstance(bv.output, (Function, Cofunction)) and bv.output not in skip)
    unsupported = [bv for bv in active if bv not in inputs and bv.output not in skip]
    if unsupported:
        raise ConfigurationError(
            f"cannot differentiate {block} with respect to "
            f"{type(unsupported[0].output).__name__} {unsupported[0].output}"
        )
    return FormInputs(inputs, tuple(bv for bv in inputs if bv in active))


class Placeholders:
    """Placeholder Functions standing for a block's input values.

    With ``tangents``, also for the first- and second-order tangents of its active inputs.
    """

    def __init__(self, inputs: FormInputs, tangents: bool = False):
        from firedrake import Function

        self.values = [type(bv.output)(bv.output.function_space()) for bv in inputs.all]
        self.active = [self.values[i] for i in inputs.active_positions]
        make = (lambda: [Function(c.function_space()) for c in self.active]) if tangents \
            else list
        self.first, self.second = make(), make()
        self.replace_map = {bv.output: c for bv, c in zip(inputs.all, self.values)}
        self._loaded = [None] * len(self.values)  # per value: what it was last loaded from

    def load_values(self, inputs: FormInputs) -> None:
        """Copy the inputs' values in.

        A value already loaded from the same, unchanged object is not copied again (a
        coefficient read by every step of a run).
        """
        for i, (c, bv) in enumerate(zip(self.values, inputs.all)):
            source = bv.saved_output
            loaded = self._loaded[i]
            if loaded is not None and loaded[0]() is source \
                    and loaded[1:] == (source.dat.dat_version, c.dat.dat_version):
                continue
            copy_values(c, source)
            self._loaded[i] = (weakref.ref(source), source.dat.dat_version, c.dat.dat_version)

    def load_first(self, jets, r: int) -> None:
        for c, jet in zip(self.first, jets):
            copy_values(c, jet.first[r])

    def load_second(self, jets) -> bool:
        """Load the inputs' second-order tangents; False if all are zero."""
        for c, jet in zip(self.second, jets):
            if jet.second is None:
                c.zero()
            else:
                copy_values(c, jet.second)
        return any(jet.second is not None for jet in jets)


@dataclass(frozen=True)
class BlockPattern:
    """What a block's per-pattern derivatives are keyed by and derived from."""

    kind: str  # "solve" or "assemble"
    inputs: FormInputs  # none active
    forms: tuple
    extra: tuple


def block_pattern(block) -> BlockPattern | None:
    """The pattern of a solve fe_adjoint's own solves reproduce, or of an assembled scalar.

    None for any other block. A non-linear solve's initial guess is not among the inputs.
    """
    kind = block_kind(type(block))
    if kind == "solve" and plain_solve(block):
        inputs = form_inputs(block, (), skip=() if block.linear else (block.func,))
        return BlockPattern(kind, inputs, (block.lhs, block.rhs), solve_pattern_extra(block))
    if kind == "assemble" and not block.form.arguments():
        return BlockPattern(kind, form_inputs(block, ()), (block.form,), ())
    return None


def derived(patterns: PatternCache, block, pattern: BlockPattern, inputs: FormInputs,
            name: str, classes: dict):
    """The derivation ``name`` of ``block``'s pattern for the active ``inputs``, made once.

    ``classes[pattern.kind](patterns, block, inputs)`` makes it.
    """
    key = patterns.key(f"{pattern.kind}-{name}", pattern.forms, inputs, *pattern.extra)
    return patterns.get_or_make(key, lambda: classes[pattern.kind](patterns, block, inputs))


def solve_residual(block, unknown, replace_map):
    """A solve block's residual ``F(unknown; inputs)`` written on placeholders."""
    import firedrake
    import ufl

    if block.linear:
        trial = firedrake.Function(block.function_space)
        residual = firedrake.action(block.lhs, trial) - block.rhs
    else:
        trial, residual = block.func, block.lhs
    return ufl.replace(residual, {**replace_map, trial: unknown})


_SOLVER_EXTRAS = ("nullspace", "transpose_nullspace", "near_nullspace", "appctx",
                  "form_compiler_parameters")


def plain_solve(block) -> bool:
    """Whether fe_adjoint's own solves reproduce a solve block's.

    Not when it uses null spaces, an application context or form compiler parameters.
    """
    return not any(block.forward_kwargs.get(name) for name in _SOLVER_EXTRAS)


def homogeneous_bcs(block) -> list:
    """A solve block's boundary conditions with zero values (for tangents and adjoints)."""
    import firedrake

    return [bc.reconstruct(g=0) if isinstance(bc, firedrake.DirichletBC) else bc
            for bc in block.bcs]


def solve_pattern_extra(block) -> tuple:
    """The parts of a solve block's pattern key beyond its forms and inputs."""
    unknown = tuple(c is block.func for c in block.lhs.coefficients())
    bcs = tuple((id(bc.function_space()), str(bc.sub_domain)) for bc in block.bcs)
    return block.linear, unknown, bcs


def directional(expression, variables, directions):
    """sum_i d(expression)/d(variables_i) [directions_i], derivatives expanded."""
    import ufl
    from ufl.algorithms import expand_derivatives

    terms = [ufl.derivative(expression, v, d) for v, d in zip(variables, directions)]
    return expand_derivatives(sum(terms[1:], terms[0]))


def is_zero(expression) -> bool:
    """Whether a derived form or expression vanished."""
    import ufl

    if isinstance(expression, ufl.form.Form):
        return expression.empty()
    return isinstance(expression, ufl.constantvalue.Zero)


def copied_function(block):
    """The source of ``u.assign(v)`` between Functions of one space; None for any other block."""
    from firedrake import Function

    deps = block.get_dependencies()
    out = block.get_outputs()[0].output
    if block.expr is not None or len(deps) != 1 or not isinstance(out, Function) \
            or not isinstance(deps[0].output, Function) \
            or deps[0].output.function_space() != out.function_space():
        return None
    return deps[0]


def copy_values(target, source) -> None:
    """Copy a Function's values into another of the same space (PETSc, no generated kernel)."""
    with source.dat.vec_ro as s, target.dat.vec_wo as t:
        s.copy(t)


class Assembly:
    """One form, assembled again and again into one tensor by one Firedrake assembler.

    Firedrake's ``assemble(form)`` pre-processes the form at every call; an assembler
    made once skips that. ``None`` is returned for a form that vanished.
    """

    def __init__(self, form, bcs=(), mat_type=None):
        from firedrake.assemble import get_assembler

        from .form_sums import SumAssembly, form_sum_terms

        self.rank = None if is_zero(form) else len(form.arguments())
        self.tensor = None
        terms = form_sum_terms(form) if self.rank == 1 and not bcs else None
        if terms and any(not hasattr(t, "integrals") for _, t in terms):  # Cofunctions too
            self._assembler = SumAssembly(terms, form.arguments()[0].function_space().dual())
        elif self.rank is not None:
            kwargs = {"bcs": bcs, "mat_type": mat_type} if self.rank == 2 else {}
            self._assembler = get_assembler(form, **kwargs)

    def __call__(self):
        if self.rank is None:
            return None
        if self.rank == 0:
            return float(self._assembler.assemble())
        if hasattr(self._assembler, "terms"):
            self.tensor = self._assembler()
        else:
            self.tensor = self._assembler.assemble(tensor=self.tensor)
        return self.tensor


def axpy(target, alpha: float, source) -> None:
    """Add ``alpha * source`` to ``target`` in place (Functions and Cofunctions)."""
    with target.dat.vec as t, source.dat.vec_ro as s:
        t.axpy(alpha, s)
