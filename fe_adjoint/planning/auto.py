"""``enable_checkpointing("auto", ...)``: a schedule planned from the run's first taped steps.

While the first ``probe_steps`` steps are taped, a :class:`Probe` stands in for the driver:
it holds every value of those steps and measures them (seconds per taped step, bytes of
restart and adjoint data, the disk's bandwidth). Then :func:`~.planner.plan` picks the
schedule, and the session hands the probed steps to a driver of that schedule as if it
had been running from the start. The probed steps are held together once, for a moment:
allow ``probe_steps`` steps of data above the memory budget.
"""

from __future__ import annotations

import statistics
import sys
import time

from ..errors import ConfigurationError
from .costs import StepCosts, measure_disk, measure_slots
from .planner import budget, plan

# Without measured replay and adjoint costs (costs=), they are taken as these shares of a
# taped step, measured with benchmarks/planner.py: a replay reuses the step's assembled
# operators and factorisations, but a non-linear solve replays its Newton iterations; an
# adjoint step is one linear solve with a reused operator. (Heat: replay 0.20-0.28, adjoint
# 0.22-0.28; Burgers, Newton: replay 0.67-0.75, adjoint 0.26.)
REPLAY_SHARE = {"linear": 0.25, "non-linear": 0.7}
ADJOINT_SHARE = 0.25


class AutoSchedule:
    """A schedule chosen by the planner once the run's first steps are measured.

    Parameters
    ----------
    steps
        The run's number of steps; None for a run of unknown length (give
        ``expected_steps``, the most it may take).
    memory, disk
        Budgets for checkpoint data on each process (bytes or ``"4GiB"``; ``"inf"``).
    costs
        Replay and adjoint costs measured before: a :class:`StepCosts` or the path of a report
        saved by :func:`fe_adjoint.save_report`; its seconds per replayed and adjoint step are
        scaled by this run's taped step. Default: shares of this run's taped step.
    probe_steps
        Steps taped and measured before planning (the first is not timed: it compiles).
    verbose
        Print the plan's explanation when it is made.
    """

    def __init__(self, steps: int | None, memory="inf", disk=0, *, expected_steps=None,
                 costs=None, probe_steps: int = 3, verbose: bool = False):
        if steps is not None and steps < 1:
            raise ConfigurationError(f"AutoSchedule needs at least one step; got {steps}")
        if steps is None and expected_steps is None:
            raise ConfigurationError(
                "AutoSchedule(steps=None) plans a run of unknown length: give "
                "expected_steps=, the most steps it may take")
        if probe_steps < 1:
            raise ConfigurationError(f"probe_steps must be at least 1; got {probe_steps}")
        if costs is not None and not isinstance(costs, StepCosts):
            costs = StepCosts.from_report(costs)
        self.max_n, self.memory, self.disk = steps, memory, disk
        self.expected_steps, self.costs, self.probe_steps = expected_steps, costs, probe_steps
        self.verbose = verbose
        self.plan = None  # the Plan, once made
        budget(memory), budget(disk)  # a bad budget fails now

    def __deepcopy__(self, memo):
        return self


class Probe:
    """Stands in for the driver while the first steps are taped, and measures them."""

    taping = True
    levels: dict = {}

    def __init__(self, auto: AutoSchedule, model, stats, make_level, disk_dir: str, comm):
        self.auto, self.model, self.stats = auto, model, stats
        self.max_n = auto.max_n
        self._make_level, self._disk_dir, self._comm = make_level, disk_dir, comm
        self.steps: list[int] = []
        self._intervals: list[float] = []
        self._nonlinear = False
        self._last = time.perf_counter()

    @property
    def done(self) -> bool:
        return len(self.steps) >= self.auto.probe_steps

    def taped_step(self, k: int) -> None:
        """Measure taped step ``k`` (its values are all still held)."""
        # The first step compiles (and holds the set-up): it is timed only if alone.
        self._intervals.append(time.perf_counter() - self._last)
        self.steps.append(k)
        record_bytes(self.model, k, self.stats)
        self._nonlinear = self._nonlinear or any(map(_nonlinear, self.model.blocks[k]))
        self._last = time.perf_counter()

    def decide(self):
        """The plan for the measured costs; also kept as ``auto.plan``."""
        auto = self.auto
        taped = statistics.median(self._intervals[1:] or self._intervals)
        given = auto.costs
        if given is not None:
            replay, adjoint = (taped * given.replay_s / given.forward_s,
                               taped * given.adjoint_s / given.forward_s)
        else:
            kind = "non-linear" if self._nonlinear else "linear"
            replay, adjoint = taped * REPLAY_SHARE[kind], taped * ADJOINT_SHARE
        costs = StepCosts(taped, adjoint, self.stats.step_bytes["restart_bytes"],
                          self.stats.step_bytes["adjoint_bytes"], replay_s=replay)
        if auto.disk != 0:
            costs = self._with_disk(costs)
        costs = self._agreed(costs)
        auto.plan = plan(auto.max_n, costs, auto.memory, auto.disk, auto.expected_steps)
        self.stats.schedule = f"{auto.plan.choice.label()} (planned)"
        if auto.verbose and self._comm.rank == 0:
            print(auto.plan.explain(), file=sys.stderr, flush=True)
        return auto.plan

    def _with_disk(self, costs: StepCosts) -> StepCosts:
        """The disk's bandwidth, and what a checkpoint file of this run's values costs."""
        from checkpoint_schedules import StorageType

        write_bps, read_bps = measure_disk(self._disk_dir)
        k = self.steps[-1]
        keys = self.model.index.early_keys(k, k) | self.model.index.adjoint_keys(k)
        values = self.model.values(keys, k)
        level = self._make_level(StorageType.DISK)
        try:
            latency = measure_slots(level, values, self.model.nbytes(values), write_bps,
                                    read_bps)
        finally:
            level.close()
        return costs.with_disk(write_bps, read_bps, latency)

    def _agreed(self, costs: StepCosts) -> StepCosts:
        """Costs every rank plans with: the slowest step, the largest data, the slowest disk."""
        from mpi4py import MPI

        if self._comm.size == 1:
            return costs
        values = costs.as_dict()
        slowest = {k: self._comm.allreduce(v, op=MPI.MIN if k.endswith("bps") else MPI.MAX)
                   for k, v in values.items()}
        return StepCosts(**slowest)

    def close(self) -> None:
        pass


def record_bytes(model, k: int, stats) -> None:
    """Note the bytes of taped step ``k``'s restart and adjoint data, keeping the largest."""
    index = model.index
    restart = model.nbytes(model.values(index.early_keys(k, k), k))
    adjoint = model.nbytes(model.values(index.adjoint_keys(k), k))
    sizes = stats.step_bytes
    sizes["restart_bytes"] = max(sizes["restart_bytes"], restart)
    sizes["adjoint_bytes"] = max(sizes["adjoint_bytes"], adjoint)


def _nonlinear(block) -> bool:
    """Whether ``block`` is a Firedrake solve whose Jacobian reads its solution (Newton)."""
    if getattr(block, "linear", True):  # not a solve, or solve(a == L)
        return False
    import ufl
    from ufl.algorithms import expand_derivatives
    from ufl.algorithms.analysis import extract_coefficients

    try:
        jacobian = expand_derivatives(ufl.derivative(block.lhs, block.func))
        return any(c is block.func for c in extract_coefficients(jacobian))
    except Exception:  # noqa: BLE001 - a residual UFL cannot differentiate: take it as Newton
        return True
