"""checkpoint_schedules schedules by name, for command lines and demos."""

from __future__ import annotations

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
