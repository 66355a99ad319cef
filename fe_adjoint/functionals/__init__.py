"""Time functionals: sums, integrals, maxima and sensor misfits, one block per observation.

:mod:`.reductions` is the user's face (``observe()`` in the loop, ``value`` after it),
:mod:`.blocks` the running reductions on the tape, :mod:`.terms` the per-step scalars and
the one hook (``value``/``adjoint``/``tlm``/``hessian``) through which a term's adjoint
source enters the adjoint of the step that observed it.
"""

from .reductions import FieldMax, PointMisfit, TimeIntegral, TimeMax, TimeSum
from .terms import PointEvaluation

__all__ = ["FieldMax", "PointEvaluation", "PointMisfit", "TimeIntegral", "TimeMax", "TimeSum"]
