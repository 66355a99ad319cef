"""fe_adjoint: fast, correct checkpointed adjoints for Firedrake time-stepping scripts.

Add two lines to a script taped with ``firedrake.adjoint``::

    fe_adjoint.enable_checkpointing(Revolve(N, 10))
    for _ in fe_adjoint.steps(N):
        ...

and use ``ReducedFunctional``, ``taylor_test`` and ``minimize`` as usual; each step is one
tape block whose adjoint reuses derived forms and factorisations. ``Jhat.tlm`` and
``Jhat.hessian`` run through the schedule; :func:`hessian_trace` gives Hessian traces in one
forward sweep; :class:`TimeSum`, :class:`TimeIntegral`, :class:`TimeMax`, :class:`FieldMax`
and :class:`PointMisfit` reduce a run over time, one tape block per observation;
:func:`minimize` with ``history=`` is an optimisation that a resubmitted batch job continues.
"""

from .checkpointing.schedules import SCHEDULE_NAMES, schedule_by_name
from .errors import ConfigurationError, FeAdjointError, ScheduleError, StorageError
from .functionals import FieldMax, PointMisfit, TimeIntegral, TimeMax, TimeSum
from .info import info
from .jobs import OptimisationHistory, minimize, node_local_dir
from .planning import Plan, StepCosts, plan
from .planning.auto import AutoSchedule
from .report.plots import plot_schedule, taylor_plot
from .report.run import report, save_report, stats
from .reversible.declared import DeclaredInverse
from .reversible.schedule import ReversibleSchedule
from .second_order.trace import TraceEstimate, hessian_trace
from .tape.session import enable_checkpointing, reuse_operators, steps

__version__ = "0.1.0"

__all__ = [
    "SCHEDULE_NAMES",
    "AutoSchedule",
    "ConfigurationError",
    "DeclaredInverse",
    "FeAdjointError",
    "FieldMax",
    "OptimisationHistory",
    "Plan",
    "PointMisfit",
    "ReversibleSchedule",
    "ScheduleError",
    "StepCosts",
    "StorageError",
    "TimeIntegral",
    "TimeMax",
    "TimeSum",
    "TraceEstimate",
    "enable_checkpointing",
    "hessian_trace",
    "info",
    "minimize",
    "node_local_dir",
    "plan",
    "plot_schedule",
    "report",
    "reuse_operators",
    "save_report",
    "schedule_by_name",
    "stats",
    "steps",
    "taylor_plot",
]
