"""Weighted sums of 1-forms and Cofunctions (``rhs(F) + f``, ``r(t) * q``), added up by PETSc.

Firedrake assembles a ``FormSum`` by walking it at every call, a millisecond of Python per
step for a Cofunction-forced residual. Here the sum is flattened once into weighted terms:
each form gets its own assembler made once, each Cofunction is read where it is, and the
result is one PETSc ``axpy`` per term into one tensor.
"""

from __future__ import annotations


def form_sum_terms(form, weight: float = 1.0) -> list | None:
    """``[(weight, Form or Cofunction)]`` whose sum is ``form``.

    None if it is not such a sum (numeric weights, leaves of rank 1 only).
    """
    import ufl
    from firedrake import Cofunction

    if isinstance(form, Cofunction):
        return [(weight, form)]
    if isinstance(form, ufl.form.Form):
        return [] if form.empty() else [(weight, form)]
    if isinstance(form, ufl.form.ZeroBaseForm):
        return []
    if not isinstance(form, ufl.form.FormSum):
        return None
    terms = []
    for component, w in zip(form.components(), form.weights()):
        try:
            w = float(w)
        except (TypeError, ValueError):
            return None
        inner = form_sum_terms(component, weight * w)
        if inner is None:
            return None
        terms += inner
    return terms


class SumAssembly:
    """``sum_i w_i t_i`` into one Cofunction, each form term with an assembler made once."""

    def __init__(self, terms, space):
        from firedrake import Cofunction
        from firedrake.assemble import get_assembler
        from ufl.form import Form

        self.terms = [(w, get_assembler(t) if isinstance(t, Form) else None, t)
                      for w, t in terms]
        self._tensors = [None] * len(self.terms)
        self.tensor = Cofunction(space)

    def __call__(self):
        self.tensor.dat.zero()
        with self.tensor.dat.vec as out:
            for i, (w, assembler, term) in enumerate(self.terms):
                if assembler is not None:
                    term = self._tensors[i] = assembler.assemble(tensor=self._tensors[i])
                with term.dat.vec_ro as x:
                    out.axpy(w, x)
        return self.tensor


def cofunction_sum(form, values, known, new=None):
    """A new Cofunction ``sum_i w_i values(c_i)``, or None.

    None unless ``form`` sums Cofunctions only, all with ids in ``known``. ``values(c)``
    gives the value to read for Cofunction ``c`` (its saved value); ``new(space)`` makes
    the result (default: ``Cofunction(space)``).
    """
    from firedrake import Cofunction

    terms = form_sum_terms(form)
    if not terms or any(not isinstance(t, Cofunction) or id(t) not in known
                        for _, t in terms):
        return None
    out = (new or Cofunction)(terms[0][1].function_space())
    with out.dat.vec_wo as target:
        target.zeroEntries()
        for w, c in terms:
            with values(c).dat.vec_ro as x:
                target.axpy(w, x)
    return out
