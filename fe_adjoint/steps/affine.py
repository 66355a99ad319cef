"""A linear solve's residual as matrices times its inputs, so that a replay is a few MatMults.

The residual ``F(u0; w, p)`` of a linear solve is often affine in most of its Function
inputs: the leapfrog step of a wave equation reads ``u_n`` and ``u_(n-1)`` through the
same matrices at every step, and only its coefficients ``p`` (a wave speed, ``dt``) make
those matrices. Then, with ``S`` the inputs it is affine in,

    F = sum_(w in S) (dF/dw) w  +  F|_(S=0)  +  sum_j a_j f_j      (f_j Cofunctions)

For an explicit step (``dF/du`` of the unknown diagonal), each ``dF/dw`` is assembled
into a matrix (its stored zeros dropped: a lumped mass matrix
keeps its diagonal only) and ``F|_(S=0)`` into a vector, once and again only when a value
they read changed; a replayed step is then one MatMult per input instead
of Firedrake's assembly of the whole residual (its parallel loops and their Python: 0.5 ms
of the FWI demo's 0.8 ms replayed step on 100 x 100 cells). The sum is taken in another
order than Firedrake's, so such a replay agrees with the taped run to round-off, not bit
for bit; implicit steps, where the solve dominates, keep Firedrake's assembly and replay
bit for bit.

``S`` is the largest set of Function inputs in which ``F`` is affine: no ``dF/dw`` reads a
member of ``S``. A residual whose matrices had to be re-assembled at two calls in a row
(a value they read changes every step: a non-linear or time-dependent coefficient) is
assembled as a whole from then on (:attr:`AffineResidual.usable` turns False).
"""

from __future__ import annotations

from .form_sums import form_sum_terms
from .operators import ReadsWatch
from .patterns import Assembly


class AffineResidual:
    """``F`` assembled as ``sum_w (dF/dw) w + F|_(S=0) + Cofunctions`` (see the module).

    With ``diagonal_in``, only while ``dF/d(diagonal_in)`` is a diagonal matrix (an
    explicit step: a lumped mass matrix); :attr:`usable` is False otherwise.
    """

    def __init__(self, residual, space, diagonal_in=None):
        from firedrake import Cofunction

        self.usable = False
        terms = form_sum_terms(residual)
        if not terms:
            return
        forms = [w * t for w, t in terms if hasattr(t, "integrals")]
        self.cofunctions = [(w, t) for w, t in terms if not hasattr(t, "integrals")]
        if not forms:
            return
        form = sum(forms[1:], forms[0])
        inputs, jacobians = _affine_inputs(form)
        if not inputs or (diagonal_in is not None and diagonal_in not in inputs):
            return
        self.diagonal_in = diagonal_in
        self.inverse_diagonal = None
        self.usable = True
        self.assemblies = [Assembly(J, mat_type="aij") for J in jacobians]
        self.inputs = inputs
        self.matrices = []
        self.matrix_reads = ReadsWatch(*jacobians)
        rest = _without(form, inputs)
        self.rest = Assembly(rest)
        self.rest_reads = ReadsWatch(rest) if self.rest.rank else None
        self.tensor = Cofunction(space.dual())
        self._rebuilt_last_call = False

    def __call__(self, without_diagonal_input: bool = False):
        """The residual at the inputs' current values, or None once :attr:`usable` is False.

        ``without_diagonal_input``: with ``diagonal_in`` taken as zero.
        """
        if not self._update_matrices():
            return None
        if self.rest_reads is not None and self.rest_reads.changed():
            self.rest()
        with self.tensor.dat.vec_wo as out:
            out.zeroEntries()
            for matrix, w in zip(self.matrices, self.inputs):
                if without_diagonal_input and w is self.diagonal_in:
                    continue
                with w.dat.vec_ro as x:
                    matrix.multAdd(x, out, out)
            if self.rest.rank:
                with self.rest.tensor.dat.vec_ro as r:
                    out.axpy(1.0, r)
            for weight, f in self.cofunctions:
                with f.dat.vec_ro as x:
                    out.axpy(weight, x)
        return self.tensor

    def solve(self, result) -> bool:
        """``result = -D^-1 F|_(diagonal_in = 0)``, D the diagonal ``dF/d(diagonal_in)``.

        The solution of ``F = 0`` for ``diagonal_in``, by one pointwise product. False
        (nothing done) once :attr:`usable` is False or where D has a zero.
        """
        residual = self(without_diagonal_input=True)
        if residual is None or self.inverse_diagonal is None:
            return False
        with residual.dat.vec_ro as r, result.dat.vec_wo as x:
            x.pointwiseMult(r, self.inverse_diagonal)
            x.scale(-1.0)
        return True

    def current_matrices(self):
        """The matrices ``dF/dw`` at the inputs' current values; None once unusable."""
        return self.matrices if self._update_matrices() else None

    def _update_matrices(self) -> bool:
        if not self.matrix_reads.changed():
            self._rebuilt_last_call = False
            return True
        if self._rebuilt_last_call:  # changing every step: cheaper as one assembly
            self.usable = False
            return False
        self._rebuilt_last_call = True
        self.matrices = [_without_zeros(a().petscmat) for a in self.assemblies]
        if self.diagonal_in is not None:
            diagonal = self.matrices[self.inputs.index(self.diagonal_in)]
            self.usable = is_diagonal(diagonal)
            self.inverse_diagonal = _inverse_diagonal(diagonal) if self.usable else None
        return self.usable


def _affine_inputs(form):
    """The inputs ``S`` the form is affine in (see the module) and its derivatives in them."""
    import firedrake
    from ufl.algorithms import expand_derivatives
    from ufl.algorithms.analysis import extract_coefficients

    candidates = [w for w in extract_coefficients(form) if _plain_space(w)]
    jacobians = {w: expand_derivatives(firedrake.derivative(form, w)) for w in candidates}
    reads = {w: set(extract_coefficients(J)) for w, J in jacobians.items()}
    inputs = [w for w in candidates if w not in reads[w]]
    while True:
        kept = [w for w in inputs if not reads[w].intersection(inputs)]
        if kept == inputs:
            return inputs, [jacobians[w] for w in inputs]
        inputs = kept


def _plain_space(w) -> bool:
    """A Function on one non-Real space (mixed and Real spaces keep Firedrake's assembly)."""
    from firedrake import Function

    V = w.function_space()
    return isinstance(w, Function) and len(V) == 1 and V.ufl_element().family() != "Real"


def _without(form, inputs):
    """``form`` with ``inputs`` replaced by zero, zero integrals dropped."""
    import ufl
    from ufl.constantvalue import Zero

    zeroed = ufl.replace(form, {w: Zero(w.ufl_shape) for w in inputs})
    return ufl.Form([i for i in zeroed.integrals() if not isinstance(i.integrand(), Zero)])


def _without_zeros(matrix):
    """A copy of an assembled AIJ matrix without its stored zeros.

    Firedrake stores the whole sparsity pattern of the form's space pair; a lumped mass
    matrix or a boundary term keeps only a few of those entries non-zero.
    """
    import numpy as np
    from firedrake.petsc import PETSc

    rows, columns, values = matrix.getValuesCSR()
    kept = values != 0
    new_rows = np.concatenate(([0], np.cumsum(kept)))[rows].astype(rows.dtype)
    compressed = PETSc.Mat().createAIJ(matrix.getSizes(), csr=(new_rows, columns[kept],
                                                               values[kept]),
                                       comm=matrix.comm)
    compressed.assemble()
    return compressed


def _inverse_diagonal(matrix):
    """The reciprocal of a matrix's diagonal as a PETSc Vec; None if it has a zero."""
    from mpi4py import MPI

    diagonal = matrix.getDiagonal()
    if matrix.comm.tompi4py().allreduce(bool((diagonal.array_r == 0).any()), op=MPI.LOR):
        return None
    diagonal.reciprocal()
    return diagonal


def diagonal_rows(matrix):
    """Per local row of a (compressed) AIJ matrix: whether it holds no entry off the diagonal."""
    import numpy as np

    indptr, columns, _ = matrix.getValuesCSR()
    counts = np.diff(indptr)
    single = np.flatnonzero(counts == 1)
    on_diagonal = counts == 0
    on_diagonal[single] = columns[indptr[single]] == matrix.getOwnershipRange()[0] + single
    return on_diagonal


def is_diagonal(matrix) -> bool:
    """Whether a (compressed) AIJ matrix holds entries on its diagonal only, on every rank."""
    from mpi4py import MPI

    return matrix.comm.tompi4py().allreduce(bool(diagonal_rows(matrix).all()), op=MPI.LAND)
