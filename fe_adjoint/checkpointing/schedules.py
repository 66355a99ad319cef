"""checkpoint_schedules schedules by name, for command lines and demos."""

from __future__ import annotations

import copy
from collections.abc import Callable

from ..errors import ConfigurationError


def _table() -> dict[str, Callable]:
    from checkpoint_schedules import (
        HRevolve,
        MixedCheckpointSchedule,
        MultistageCheckpointSchedule,
        Revolve,
        SingleDiskStorageSchedule,
        SingleMemoryStorageSchedule,
        StorageType,
    )

    return {
        "revolve": lambda n, s: Revolve(n, s),
        "mixed": lambda n, s: MixedCheckpointSchedule(n, s, storage=StorageType.RAM),
        "mixed-disk": lambda n, s: MixedCheckpointSchedule(n, s, storage=StorageType.DISK),
        "multistage": lambda n, s: MultistageCheckpointSchedule(n, s, 0),
        "hrevolve": lambda n, s: HRevolve(n, s, s),
        "memory": lambda n, s: SingleMemoryStorageSchedule(),
        "disk": lambda n, s: SingleDiskStorageSchedule(),
    }


SCHEDULE_NAMES = ("revolve", "mixed", "mixed-disk", "multistage", "hrevolve", "memory", "disk")


def schedule_by_name(name: str, steps: int, snapshots: int):
    """A new schedule ``name`` (one of :data:`SCHEDULE_NAMES`) for ``steps`` steps."""
    table = _table()
    if name not in table:
        raise ConfigurationError(f"unknown schedule {name!r}; use one of {', '.join(table)}")
    return table[name](steps, snapshots)


def unused_copy(schedule):
    """A copy of a schedule that has not been iterated, to start later runs from.

    The Revolve family precomputes its whole operation sequence (O(N log N) objects)
    and only reads it while iterating: the copy shares it instead of duplicating it.
    """
    from checkpoint_schedules.hrevolve import RevolveCheckpointSchedule

    memo = {}
    if isinstance(schedule, RevolveCheckpointSchedule):
        sequence = vars(schedule).get("_schedule")
        memo[id(sequence)] = sequence
    try:
        return copy.deepcopy(schedule, memo)
    except TypeError:  # a generator inside: checkpoint_schedules has iterated it
        raise ConfigurationError(
            "the schedule has already been iterated (by pyadjoint's own checkpointing or a "
            "loop over its actions); pass a schedule that has not been used. A schedule "
            "given to fe_adjoint is never iterated itself and can be given again"
        ) from None
