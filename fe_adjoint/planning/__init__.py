"""The schedule planner: picks a checkpoint_schedules schedule from budgets and step costs.

:mod:`.costs` holds what one step costs (time, bytes, disk bandwidth), measured or given;
:mod:`.simulate` runs a schedule through the real driver on a synthetic model to count
what it would do; :mod:`.candidates` lists the schedules that fit the budgets and
:mod:`.planner` ranks them with the cost model and explains the pick.
"""

from ..sizes import parse_bytes
from .costs import StepCosts
from .planner import Plan, plan

__all__ = ["Plan", "StepCosts", "parse_bytes", "plan"]
