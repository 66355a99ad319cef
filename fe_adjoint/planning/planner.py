"""``fe_adjoint.plan``: the schedule that fits the budgets and is predicted to be fastest."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError
from ..sizes import format_bytes, parse_bytes
from . import candidates as catalogue
from .costs import StepCosts


def predicted_seconds(candidate, costs: StepCosts, n_steps: int) -> float:
    """The cost model: taped forward, recomputed steps, adjoint steps and data movement.

    Data movement is bytes over bandwidth, plus a latency per checkpoint file.
    """
    usage = candidate.usage
    moved = usage.written.get("DISK", 0) / costs.disk_write_bps \
        + usage.read.get("DISK", 0) / costs.disk_read_bps \
        + (usage.written.get("RAM", 0) + usage.read.get("RAM", 0)) / costs.ram_bps \
        + (usage.slots_written.get("DISK", 0) + usage.slots_read.get("DISK", 0)) \
        * costs.disk_latency_s
    return (n_steps * costs.forward_s + (usage.forward_steps - n_steps) * costs.replay_s
            + usage.reverse_steps * costs.adjoint_s + moved)


@dataclass
class Plan:
    """A planner's choice among its candidates, with the figures it compared."""

    n_steps: int | None
    costs: StepCosts
    memory: int
    disk: int
    candidates: list  # of Candidate, fastest first
    seconds: list  # predicted seconds, same order

    @property
    def choice(self):
        return self.candidates[0]

    @property
    def predicted_s(self) -> float:
        return self.seconds[0]

    def schedule(self):
        """A new, unused schedule of the chosen kind and parameters."""
        return self.choice.make()

    def table(self) -> str:
        """The candidates, fastest first: predicted time, recomputed steps, storage."""
        rows = [f"{'schedule':<34} {'predicted s':>11} {'recomputed':>10} "
                f"{'memory':>10} {'disk':>10}"]
        for candidate, seconds in zip(self.candidates, self.seconds):
            rows.append(f"{candidate.label():<34} {seconds:>11.3f} "
                        f"{candidate.usage.recomputed:>10} {format_bytes(candidate.memory):>10} "
                        f"{format_bytes(candidate.disk):>10}")
        return "\n".join(rows)

    def explain(self) -> str:
        """Why the choice: the budgets, the costs measured or given, and the table."""
        c = self.costs
        steps = self.n_steps if self.n_steps is not None else "online"
        return "\n".join([
            f"fe_adjoint plan for {steps} steps within memory {format_bytes(self.memory)}, "
            f"disk {format_bytes(self.disk)}",
            f"  per step: forward {c.forward_s:.3g} s, replay {c.replay_s:.3g} s, adjoint "
            f"{c.adjoint_s:.3g} s, restart {format_bytes(c.restart_bytes)}, adjoint data "
            f"{format_bytes(c.adjoint_bytes)}; disk {format_bytes(c.disk_write_bps)}/s write, "
            f"{format_bytes(c.disk_read_bps)}/s read, {1e3 * c.disk_latency_s:.2g} ms a file",
            f"  chosen: {self.choice.label()}, predicted {self.predicted_s:.3f} s",
            self.table(),
        ])

    def __str__(self) -> str:
        return self.explain()


def plan(steps: int | None, costs: StepCosts, memory="inf", disk=0,
         expected_steps: int | None = None) -> Plan:
    """Choose a checkpointing schedule for a run from budgets and per-step costs.

    Parameters
    ----------
    steps
        The run's number of steps; None for a run whose length is known only at its end.
    costs
        What one step costs (:class:`StepCosts`: measured by ``enable_checkpointing("auto")``,
        read from a saved report with ``StepCosts.from_report``, or given).
    memory, disk
        Budgets for checkpoint data on each process: bytes, or text such as ``"4GiB"``;
        ``"inf"`` for no limit.
    expected_steps
        For ``steps=None``: the most steps the run may take, the length budgets are kept for.

    Returns
    -------
    Plan
        ``plan.schedule()`` is a new schedule of the chosen kind; ``print(plan)`` explains.

    Raises
    ------
    ConfigurationError
        If no schedule fits the budgets (the message says what would fit).
    """
    memory_bytes, disk_bytes = budget(memory), budget(disk)
    limits = catalogue.Budget(memory_bytes, disk_bytes)
    if steps is not None:
        if int(steps) < 1:
            raise ConfigurationError(f"a plan needs at least one step; got steps={steps}")
        n_steps, found = int(steps), catalogue.offline(int(steps), costs, limits)
    elif expected_steps is None:
        raise ConfigurationError(
            "a plan for a run of unknown length (steps=None) needs expected_steps=, the "
            "most steps it may take: the budgets are kept up to that length")
    else:
        n_steps, found = int(expected_steps), catalogue.online(int(expected_steps), costs,
                                                               limits)
    if not found:
        raise ConfigurationError(_what_fits(n_steps, costs, memory_bytes, disk_bytes))
    ranked = sorted(((predicted_seconds(c, costs, n_steps), c.memory + c.disk, i, c)
                     for i, c in enumerate(found)), key=lambda row: row[:3])
    return Plan(steps, costs, memory_bytes, disk_bytes, [row[3] for row in ranked],
                [row[0] for row in ranked])


def budget(value) -> int:
    """Bytes of a budget: a number, text with a unit, or "inf" (None) for no limit."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("inf", "")):
        return 2**62
    if isinstance(value, float) and value == float("inf"):
        return 2**62
    return parse_bytes(value)


def _what_fits(n_steps: int, costs: StepCosts, memory: int, disk: int) -> str:
    size = format_bytes
    restart, adjoint = costs.restart_bytes, costs.adjoint_bytes
    return (
        f"no checkpointing schedule for {n_steps} steps fits memory {size(memory)} and disk "
        f"{size(disk)}: a step's restart data takes {size(restart)} and its adjoint data "
        f"{size(adjoint)}. The least that fits is memory {size(restart + adjoint)} (one "
        f"restart snapshot and one step's adjoint data, recomputing about "
        f"{n_steps * (n_steps - 1) // 2} steps), or memory {size(adjoint)} with disk "
        f"{size(restart)} or more")
