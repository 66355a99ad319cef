"""The schedules a plan compares, each with the most snapshots that fit the budgets.

A snapshot count is first estimated from the bytes per step, then checked by simulating
the schedule (:func:`.simulate.simulate`) and lowered until the simulated peaks fit: what
is proposed fits by the same counts the run's report will show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import checkpoint_schedules as cs

from .simulate import Usage, simulate

# Revolve, H-Revolve and disk-Revolve build their schedules with a pure-Python dynamic
# programme (about 42 s at 1000 steps): beyond this many steps they are not proposed.
DYNAMIC_PROGRAMME_STEPS = 300


@dataclass
class Candidate:
    """One schedule with its parameters and what it would do on the run."""

    name: str
    params: dict
    make: Callable  # () -> a new schedule
    usage: Usage

    @property
    def memory(self) -> int:
        return self.usage.peak_bytes.get("RAM", 0) + self.usage.peak_bytes.get("WORK", 0)

    @property
    def disk(self) -> int:
        return self.usage.peak_bytes.get("DISK", 0)

    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Budget:
    """What a plan may use: bytes of memory and of disk, on each process."""

    memory: int
    disk: int

    def admits(self, candidate: Candidate) -> bool:
        return candidate.memory <= self.memory and candidate.disk <= self.disk


def _sized(name, params, make, n_steps, costs, budget, shrink: str | None):
    """The candidate, with ``params[shrink]`` lowered until it fits; None if nothing does."""
    while True:
        try:
            schedule = make(**params)
        except Exception:  # noqa: BLE001 - parameters checkpoint_schedules cannot schedule
            return None
        usage = simulate(schedule, n_steps, costs.restart_bytes, costs.adjoint_bytes)
        candidate = Candidate(name, dict(params), lambda p=dict(params): make(**p), usage)
        if budget.admits(candidate):
            return candidate
        if shrink is None or params[shrink] <= (0 if shrink == "disk" else 1):
            return None
        over = max(candidate.memory - budget.memory, candidate.disk - budget.disk)
        step = max(1, over // max(1, costs.restart_bytes, costs.adjoint_bytes))
        params[shrink] = max(0 if shrink == "disk" else 1, params[shrink] - step)


def _snapshots(nbytes: int, per: int, n_steps: int) -> int:
    return int(min(n_steps, nbytes // max(1, per)))


def offline(n_steps: int, costs, budget: Budget) -> list[Candidate]:
    """Candidates for a run of ``n_steps`` steps, known before it starts."""
    R, A = max(1, costs.restart_bytes), costs.adjoint_bytes
    ram = _snapshots(budget.memory - A, R, n_steps)
    ram_mixed = _snapshots(budget.memory, max(R, A), n_steps)
    disk = _snapshots(budget.disk, R, n_steps)
    disk_mixed = _snapshots(budget.disk, max(R, A), n_steps)
    found = [
        _sized("memory", {}, lambda: cs.SingleMemoryStorageSchedule(), n_steps, costs, budget,
               None),
        _sized("disk", {}, lambda: cs.SingleDiskStorageSchedule(), n_steps, costs, budget, None),
    ]
    if ram >= 1:
        found.append(_sized("multistage", {"ram": ram, "disk": 0},
                            lambda ram, disk: cs.MultistageCheckpointSchedule(n_steps, ram, disk),
                            n_steps, costs, budget, "ram"))
    if ram_mixed >= 1:
        found.append(_sized("mixed", {"snapshots": ram_mixed},
                            lambda snapshots: cs.MixedCheckpointSchedule(
                                n_steps, snapshots, storage=cs.StorageType.RAM),
                            n_steps, costs, budget, "snapshots"))
    if disk_mixed >= 1:
        found.append(_sized("mixed-disk", {"snapshots": disk_mixed},
                            lambda snapshots: cs.MixedCheckpointSchedule(
                                n_steps, snapshots, storage=cs.StorageType.DISK),
                            n_steps, costs, budget, "snapshots"))
    for share in (1, 4, 16):
        if disk // share >= 1 and ram >= 1:
            found.append(_sized("multistage", {"ram": ram, "disk": disk // share},
                                lambda ram, disk: cs.MultistageCheckpointSchedule(
                                    n_steps, ram, disk), n_steps, costs, budget, "disk"))
    ram = min(ram, n_steps - 1)  # the Revolve family wants fewer snapshots than steps
    if 2 <= n_steps <= DYNAMIC_PROGRAMME_STEPS and ram >= 1:
        found.append(_sized("revolve", {"ram": ram}, lambda ram: cs.Revolve(n_steps, ram),
                            n_steps, costs, budget, "ram"))
        if disk >= 1:
            found.append(_sized("hrevolve", {"ram": ram, "disk": disk},
                                lambda ram, disk: cs.HRevolve(n_steps, ram, disk),
                                n_steps, costs, budget, "disk"))
            found.append(_sized("disk-revolve", {"ram": ram},
                                lambda ram: cs.DiskRevolve(n_steps, ram), n_steps, costs,
                                budget, "ram"))
    return _distinct(found)


def online(expected_steps: int, costs, budget: Budget) -> list[Candidate]:
    """Candidates for a run whose length is known only when it ends.

    The budgets are kept for runs of up to ``expected_steps`` steps.
    """
    R = max(1, costs.restart_bytes)
    ram = _snapshots(budget.memory - costs.adjoint_bytes, R, expected_steps)
    found = [_sized("memory", {}, lambda: cs.SingleMemoryStorageSchedule(), expected_steps,
                    costs, budget, None),
             _sized("disk", {}, lambda: cs.SingleDiskStorageSchedule(), expected_steps, costs,
                    budget, None)]
    periodic = _snapshots(budget.disk, R, expected_steps)
    if ram >= 1 and periodic >= 1:
        for share in (1, 4):
            period = -(-expected_steps // max(1, periodic // share))
            found.append(_sized("two-level", {"period": period, "ram": ram},
                                lambda period, ram: cs.TwoLevelCheckpointSchedule(
                                    period, ram, binomial_storage=cs.StorageType.RAM),
                                expected_steps, costs, budget, "ram"))
    return _distinct(found)


def _distinct(found) -> list[Candidate]:
    seen, kept = set(), []
    for candidate in found:
        if candidate is not None and candidate.label() not in seen:
            seen.add(candidate.label())
            kept.append(candidate)
    return kept
