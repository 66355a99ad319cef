"""Opt-in: a taped solve keeps its solver's assembled, factorised operator when nothing changed.

Firedrake's ``NonlinearVariationalSolver`` (``LinearVariationalSolver`` too) assembles and
factorises its Jacobian at every solve. While taping, fe_adjoint sees each solve's block
before it runs, and so can tell when that work would only repeat the last solve's: the
Jacobian does not read the unknown (the problem is linear in it) and nothing it reads has
changed since the solver last assembled it -- its Constants by value, its Functions and the
mesh coordinates by PyOP2 data version, the assembled matrix by PETSc object state (any
other solve, taped or not, moves it). The solve then runs as Firedrake runs a problem made
with ``constant_jacobian=True`` (no assembly; PETSc keeps the factorisation of an unchanged
matrix), the problem's own setting is given back as soon as the solve's output is taped, and
the result is that of the same matrix and factorisation: the same solution, to the last bit.

Only solvers named in ``fe_adjoint.reuse_operators(solver)`` are touched;
fe_adjoint's replays and adjoints keep their own per-pattern operators (unchanged by this).
"""

from __future__ import annotations

from ..errors import ConfigurationError
from .inputs import fingerprint, object_name, same_fingerprint
from .reads import constants_of


class _Solver:
    """One opted-in solver: what its Jacobian read when it was last assembled."""

    def __init__(self, solver):
        self.solver = solver
        self._problem = solver._problem
        self._switched = False  # whether a solve runs with constant_jacobian set by us
        self._assembled = None  # (fingerprints of the Jacobian's reads, matrix state)

    def _matrix(self):
        return self.solver.snes.getJacobian()[0]

    def before(self, block) -> bool:
        """Set up the solve of ``block``; whether it keeps the last assembled operator."""
        reads = _jacobian_reads(block)
        matrix = self._matrix()
        if reads is None or self._problem._constant_jacobian or matrix.getType() == "python":
            self._assembled = None  # not ours to decide, or nothing to keep
            return False
        now = tuple(fingerprint(obj) for obj in reads)
        keep = self._assembled is not None and self._assembled[1] == matrix.stateGet() \
            and all(same_fingerprint(a, b) for a, b in zip(self._assembled[0], now))
        keep = self._all_ranks(keep)  # assembling is collective: every rank decides alike
        if keep:
            # Firedrake's own switch for an operator assembled once (constant_jacobian=True);
            # it was off (checked above), so restore() turns it off again.
            self._problem._constant_jacobian = self._switched = True
        self._assembled = (now, None)  # the matrix's state once the solve has run (after)
        return keep

    def _all_ranks(self, keep: bool) -> bool:
        comm = self._problem.u_restrict.function_space().mesh().comm
        if comm.size == 1:
            return keep
        from mpi4py import MPI

        return comm.allreduce(keep, op=MPI.LAND)

    def after(self) -> None:
        """The solve has run: the problem's setting back, the matrix's state noted."""
        self.restore()
        if self._assembled is not None:
            self._assembled = (self._assembled[0], self._matrix().stateGet())

    def restore(self) -> None:
        """Give the problem its own ``constant_jacobian`` (off) back, if a solve set it."""
        if self._switched:
            self._problem._constant_jacobian = self._switched = False


def _jacobian_reads(block):
    """What a solve's Jacobian (and preconditioning operator) reads.

    None where it reads the unknown, or is more than a plain form (an operator inside it).
    """
    import ufl

    forms = [block.problem_J, block.solver_kwargs.get("Jp")]
    reads = {}
    for form in forms:
        if form is None:
            continue
        if not isinstance(form, ufl.Form) or form.base_form_operators():
            return None
        for obj in (*form.coefficients(), *constants_of(form)):
            reads.setdefault(id(obj), obj)
        for mesh in form.ufl_domains():
            reads.setdefault(id(mesh.coordinates), mesh.coordinates)
    if id(block.func) in reads:
        return None
    return tuple(reads.values())


class SolverReuse:
    """The opted-in solvers of one tape, and how many taped solves kept their operator."""

    def __init__(self, counts: dict):
        self._solvers = {}
        self._running = None
        self.counts = counts  # {"kept": n, "assembled": m}, counted as the solves are taped

    def add(self, solvers) -> None:
        """Opt ``solvers`` in."""
        for solver in solvers:
            if not hasattr(solver, "snes") or not hasattr(solver, "_ad_solvers"):
                raise ConfigurationError(
                    f"reuse_operators takes Firedrake variational solvers "
                    f"(LinearVariationalSolver, NonlinearVariationalSolver); got "
                    f"{object_name(solver)}")
            # A solver's taped blocks share its dictionary of adjoint solvers with it.
            self._solvers.setdefault(id(solver._ad_solvers), _Solver(solver))

    def block_added(self, block) -> None:
        """Before ``block`` runs: if it is an opted-in solver's solve, set it up."""
        self.restore()
        entry = self._solvers.get(id(getattr(block, "_ad_solvers", None)))
        if entry is None:
            return
        self.counts["kept" if entry.before(block) else "assembled"] += 1
        self._running = (entry, block)

    def output_added(self, block) -> None:
        """``block`` has run: if it was the solve set up, finish it."""
        if self._running is not None and self._running[1] is block:
            self._running[0].after()
            self._running = None

    def restore(self) -> None:
        """Give back what a solve that raised left set (its output was never taped)."""
        if self._running is not None:
            self._running[0].restore()  # its matrix state stays unnoted: assembled next
            self._running = None
