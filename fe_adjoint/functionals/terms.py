"""The per-step scalars a time functional reduces: a form, or a misfit at receivers.

A term is what one observation adds. It lists the objects it reads (they become the
dependencies of the observation's block) and gives its value and its first and second
derivatives from the saved values of those dependencies. This is the one hook through
which a functional's adjoint source enters a step's adjoint:

``value(inputs)``
    the scalar ``j`` (summed over MPI ranks);
``adjoint(inputs, adj, bv, idx)``
    ``adj * dj/d(input idx)`` (a Cofunction for a Function input);
``tlm(inputs, deps)``
    ``dj . tlm`` from the tangent values of ``deps`` (the term's BlockVariables);
``hessian(inputs, hessian, adj, bv, idx, relevant)``
    ``hessian * dj/d(input idx) + adj * d2j/(d(input idx) d(tlm))``.
"""

from __future__ import annotations

import numpy as np


class FormTerm:
    """``j = assemble(form)`` of a scalar form, differentiated as Firedrake's AssembleBlock.

    The block of Firedrake's own assembly is held, not taped: it is built when the step
    is observed, so its dependencies are the values the form reads at that step.
    """

    def __init__(self, form):
        from firedrake.adjoint_utils.blocks.assembly import AssembleBlock

        if len(form.arguments()) != 0:
            raise ValueError("a time functional's form must be scalar (no test or trial "
                             "functions): pass e.g. u**2*dx")
        self.form = form
        self._assembly = AssembleBlock(form)

    def dependencies(self) -> list:
        return [bv.output for bv in self._assembly.get_dependencies()]

    def value(self, inputs) -> float:
        import firedrake

        return float(firedrake.assemble(self._replaced()))

    def adjoint(self, inputs, adj, bv, idx):
        return self._assembly.evaluate_adj_component(inputs, [adj], bv, idx, self._replaced())

    def tlm(self, inputs, deps) -> float:
        return float(self._assembly.evaluate_tlm_component(inputs, None, None, 0,
                                                           self._replaced()))

    def hessian(self, inputs, hessian, adj, bv, idx, relevant):
        return self._assembly.evaluate_hessian_component(inputs, [hessian], [adj], bv, idx,
                                                         relevant, self._replaced())

    def _replaced(self):
        return self._assembly.prepare_evaluate_adj(None, None, None)


class PointEvaluation:
    """Point values of Functions of ``V`` at receivers, as one assembled matrix.

    ``receivers`` is a VertexOnlyMesh or an array of coordinates (one row per receiver).
    :attr:`local_receivers` gives, for each receiver this rank owns, its row in the
    receivers' own order, so observations given in that order are read where they are owned.
    """

    def __init__(self, V, receivers):
        from firedrake import (
            Function,
            FunctionSpace,
            TrialFunction,
            VertexOnlyMesh,
            assemble,
            interpolate,
        )

        mesh = V.mesh()
        if not hasattr(receivers, "input_ordering"):
            receivers = VertexOnlyMesh(mesh, np.asarray(receivers, dtype=float))
        self.receivers = receivers
        self.comm = mesh.comm
        points = FunctionSpace(receivers, "DG", 0)
        self.matrix = assemble(interpolate(TrialFunction(V), points)).petscmat
        ordered = Function(FunctionSpace(receivers.input_ordering, "DG", 0))
        ordered.dat.data_wo[:] = np.arange(len(ordered.dat.data_ro))
        self.count = self.comm.allreduce(len(ordered.dat.data_ro))
        self.local_receivers = np.rint(
            assemble(interpolate(ordered, points)).dat.data_ro).astype(int)
        self.V = V
        self._point_values = self.matrix.createVecLeft()
        self._field = self.matrix.createVecRight()

    def __call__(self, u) -> np.ndarray:
        """The values of ``u`` at the receivers this rank owns."""
        with u.dat.vec_ro as vec:
            self.matrix.mult(vec, self._point_values)
        return self._point_values.getArray(readonly=True).copy()

    def transpose(self, point_values):
        """The Cofunction ``P^T point_values`` (the adjoint of point evaluation)."""
        from firedrake import Cofunction

        out = Cofunction(self.V.dual())
        self._point_values.setArray(point_values)
        with out.dat.vec_wo as vec:
            self.matrix.multTranspose(self._point_values, vec)
        return out


class MisfitTerm:
    """``j = 1/2 sum_r w_r (u(x_r) - d_r)^2`` over the receivers (``d``, ``w``: this rank's)."""

    def __init__(self, u, evaluation: PointEvaluation, data, weights):
        self.u = u
        self.evaluation = evaluation
        self.data = data
        self.weights = weights

    def dependencies(self) -> list:
        return [self.u]

    def _residual(self, inputs):
        return self.evaluation(inputs[0]) - self.data

    def _sum(self, local) -> float:
        return self.evaluation.comm.allreduce(float(local))

    def value(self, inputs) -> float:
        r = self._residual(inputs)
        return self._sum(0.5 * np.dot(self.weights * r, r))

    def adjoint(self, inputs, adj, bv, idx):
        return self.evaluation.transpose(float(adj) * self.weights * self._residual(inputs))

    def tlm(self, inputs, deps) -> float:
        du = deps[0].tlm_value
        if du is None:
            return 0.0
        return self._sum(np.dot(self.weights * self._residual(inputs), self.evaluation(du)))

    def hessian(self, inputs, hessian, adj, bv, idx, relevant):
        w = self.weights
        sources = float(hessian) * w * self._residual(inputs)
        du = bv.tlm_value  # the one input, u
        if du is not None and adj is not None:
            sources = sources + float(adj) * w * self.evaluation(du)
        return self.evaluation.transpose(sources)
