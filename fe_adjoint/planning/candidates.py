"""The schedules a plan compares, each with the most snapshots that fit the budgets.

A snapshot count is first estimated from the bytes per step, then checked by simulating
the schedule (:func:`.simulate.simulate`) and lowered until the simulated peaks fit: what
is proposed fits by the same counts the run's report will show.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import checkpoint_schedules as cs

from .simulate import Usage, simulate

# Revolve, H-Revolve and disk-Revolve build their schedules with a pure-Python dynamic
# programme (about 42 s at 1000 steps): beyond this many steps they are not proposed, nor
# H-Revolve beyond this many steps times snapshots (1.5 s at 200 x 207).
DYNAMIC_PROGRAMME_STEPS = 300
HREVOLVE_SIZE = 5000

RAM, DISK = cs.StorageType.RAM, cs.StorageType.DISK
MAKERS = {  # name -> (steps, **parameters) -> a new schedule
    "memory": lambda n: cs.SingleMemoryStorageSchedule(),
    "disk": lambda n: cs.SingleDiskStorageSchedule(),
    "multistage": lambda n, ram, disk: cs.MultistageCheckpointSchedule(n, ram, disk),
    "mixed": lambda n, snapshots: cs.MixedCheckpointSchedule(n, snapshots, storage=RAM),
    "mixed-disk": lambda n, snapshots: cs.MixedCheckpointSchedule(n, snapshots, storage=DISK),
    "revolve": lambda n, ram: cs.Revolve(n, ram),
    "hrevolve": lambda n, ram, disk: cs.HRevolve(n, ram, disk),
    "disk-revolve": lambda n, ram: cs.DiskRevolve(n, ram),
    "two-level": lambda n, period, ram: cs.TwoLevelCheckpointSchedule(
        period, ram, binomial_storage=RAM),  # an online schedule: n is its expected length
}


@dataclass
class Candidate:
    """One schedule with its parameters and what it would do on the run."""

    name: str
    params: dict
    n_steps: int
    usage: Usage

    def make(self):
        """A new schedule of this kind and parameters."""
        return MAKERS[self.name](self.n_steps, **self.params)

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


@functools.lru_cache(maxsize=256)
def _usage(name: str, params: tuple, n_steps: int, restart: int, adjoint: int):
    """What schedule ``name`` with ``params`` does (None if it cannot be built).

    Cached: a run planned again (a script re-taped in an optimisation loop) is not
    simulated again.
    """
    try:
        schedule = MAKERS[name](n_steps, **dict(params))
    except Exception:  # noqa: BLE001 - parameters checkpoint_schedules cannot schedule
        return None
    return simulate(schedule, n_steps, restart, adjoint)


def _sized(name: str, params: dict, n_steps: int, costs, budget: Budget,
           shrink: str | None = None) -> Candidate | None:
    """The candidate, with ``params[shrink]`` lowered until it fits; None if nothing does."""
    params, least = dict(params), 0 if shrink == "disk" else 1
    while True:
        usage = _usage(name, tuple(params.items()), n_steps, costs.restart_bytes,
                       costs.adjoint_bytes)
        if usage is None:
            return None
        candidate = Candidate(name, dict(params), n_steps, usage)
        if budget.admits(candidate):
            return candidate
        if shrink is None or params[shrink] <= least:
            return None
        over = max(candidate.memory - budget.memory, candidate.disk - budget.disk)
        step = max(1, over // max(1, costs.restart_bytes, costs.adjoint_bytes))
        params[shrink] = max(least, params[shrink] - step)


def _snapshots(nbytes: int, per: int, n_steps: int) -> int:
    return int(min(n_steps, nbytes // max(1, per)))


def offline(n_steps: int, costs, budget: Budget) -> list[Candidate]:
    """Candidates for a run of ``n_steps`` steps, known before it starts."""
    R, A = max(1, costs.restart_bytes), costs.adjoint_bytes
    ram = _snapshots(budget.memory - A, R, n_steps)
    disk = _snapshots(budget.disk, R, n_steps)
    found = [_sized("memory", {}, n_steps, costs, budget),
             _sized("disk", {}, n_steps, costs, budget)]
    slots = {"mixed": _snapshots(budget.memory, max(R, A), n_steps),
             "mixed-disk": _snapshots(budget.disk, max(R, A), n_steps)}
    found += [_sized(name, {"snapshots": s}, n_steps, costs, budget, "snapshots")
              for name, s in slots.items() if s >= 1]
    if ram >= 1:
        found += [_sized("multistage", {"ram": ram, "disk": d}, n_steps, costs, budget,
                         "disk" if d else "ram")
                  for d in sorted({0, disk, disk // 4, disk // 16})]
    ram = min(ram, n_steps - 1)  # the Revolve family wants fewer snapshots than steps
    if 2 <= n_steps <= DYNAMIC_PROGRAMME_STEPS and ram >= 1:
        found.append(_sized("revolve", {"ram": ram}, n_steps, costs, budget, "ram"))
        if disk >= 1:
            found.append(_sized("disk-revolve", {"ram": ram}, n_steps, costs, budget, "ram"))
            if n_steps * (ram + disk) <= HREVOLVE_SIZE:
                found.append(_sized("hrevolve", {"ram": ram, "disk": disk}, n_steps, costs,
                                    budget, "disk"))
    return _distinct(found)


def online(expected_steps: int, costs, budget: Budget) -> list[Candidate]:
    """Candidates for a run whose length is known only when it ends.

    The budgets are kept for runs of up to ``expected_steps`` steps.
    """
    R = max(1, costs.restart_bytes)
    ram = _snapshots(budget.memory - costs.adjoint_bytes, R, expected_steps)
    found = [_sized("memory", {}, expected_steps, costs, budget),
             _sized("disk", {}, expected_steps, costs, budget)]
    periodic = _snapshots(budget.disk, R, expected_steps)
    if ram >= 1 and periodic >= 1:
        for share in (1, 4):
            period = -(-expected_steps // max(1, periodic // share))
            found.append(_sized("two-level", {"period": period, "ram": ram}, expected_steps,
                                costs, budget, "ram"))
    return _distinct(found)


def _distinct(found) -> list[Candidate]:
    seen, kept = set(), []
    for candidate in found:
        if candidate is not None and candidate.label() not in seen:
            seen.add(candidate.label())
            kept.append(candidate)
    return kept
