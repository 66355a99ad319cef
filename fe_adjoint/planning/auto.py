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
from .costs import StepCosts, measure_disk
from .planner import budget, plan

# Without measured replay and adjoint costs (costs=), they are taken as these shares of a
# taped step (measured on fe_adjoint's heat and Burgers benchmarks: replays reuse
# factorisations, and an adjoint step is one linear solve).
REPLAY_SHARE = 0.5
ADJOINT_SHARE = 0.5


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

    def __init__(self, auto: AutoSchedule, model, stats, disk_dir: str, comm):
        self.auto, self.model, self.stats = auto, model, stats
        self.max_n = auto.max_n
        self._disk_dir, self._comm = disk_dir, comm
        self.steps: list[int] = []
        self._intervals: list[float] = []
        self._last = time.perf_counter()

    @property
    def done(self) -> bool:
        return len(self.steps) >= self.auto.probe_steps

    def taped_step(self, k: int) -> None:
        """Measure taped step ``k`` (its values are all still held)."""
        now = time.perf_counter()
        if self.steps:  # the first step compiles; its time is not the step's
            self._intervals.append(now - self._last)
        self.steps.append(k)
        record_bytes(self.model, k, self.stats)
        self._last = time.perf_counter()

    def decide(self):
        """The plan for the measured costs; also kept as ``auto.plan``."""
        auto = self.auto
        taped = statistics.median(self._intervals) if self._intervals \
            else time.perf_counter() - self._last
        given = auto.costs
        if given is not None:
            replay, adjoint = (taped * given.replay_s / given.forward_s,
                               taped * given.adjoint_s / given.forward_s)
        else:
            replay, adjoint = taped * REPLAY_SHARE, taped * ADJOINT_SHARE
        costs = StepCosts(taped, adjoint, self.stats.step_bytes["restart_bytes"],
                          self.stats.step_bytes["adjoint_bytes"], replay_s=replay)
        if auto.disk != 0:
            costs = costs.with_disk(*measure_disk(self._disk_dir, 16 * 2**20))
        costs = self._agreed(costs)
        auto.plan = plan(auto.max_n, costs, auto.memory, auto.disk, auto.expected_steps)
        self.stats.schedule = f"{auto.plan.choice.label()} (planned)"
        if auto.verbose and self._comm.rank == 0:
            print(auto.plan.explain(), file=sys.stderr, flush=True)
        return auto.plan

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
