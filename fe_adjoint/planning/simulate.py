"""What a schedule would do on a run: the real driver over a synthetic step model.

Step ``n`` of the synthetic model reads its restart data ``("u", n)`` and writes
``("u", n + 1)`` and its adjoint data ``("a", n)``; a value is its size in bytes. The
driver runs it exactly as it runs a taped Firedrake model, so the counts (steps
recomputed, bytes held and moved per level) are those fe_adjoint's report would show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from checkpoint_schedules import StorageType

from ..checkpointing.classify import BlockRecord, IndexedKeys, TapeIndex
from ..checkpointing.driver import StepDriver
from ..checkpointing.storage import DataKind
from ..checkpointing.storage.ram import RamStorage


@dataclass
class Event:
    """One thing the run did: ``what`` (forward, adjoint, store, load) at ``step``."""

    what: str
    step: int
    level: str  # RAM, DISK or WORK
    kind: str = ""  # restart or adjoint, for store and load


@dataclass
class Usage:
    """The counts of one simulated run: a taped forward and one adjoint."""

    forward_steps: int
    reverse_steps: int
    peak_bytes: dict[str, int]  # RAM, DISK, WORK (held adjoint data)
    written: dict[str, int]  # bytes written to RAM and DISK
    read: dict[str, int]
    slots_written: dict[str, int]  # slots (files, on disk) written to RAM and DISK
    slots_read: dict[str, int]
    events: list[Event] = field(default_factory=list)
    storage: list[dict[str, int]] = field(default_factory=list)  # bytes held after each event

    @property
    def recomputed(self) -> int:
        return self.forward_steps - self.reverse_steps


class _Sizes:
    def copy(self, value):
        return value

    def nbytes(self, value):
        return value


class _CountingLevel(RamStorage):
    def __init__(self, name: str, log):
        super().__init__(_Sizes())
        self.name = name
        self.written = self.read_bytes = self.slots_written = self.slots_read = 0
        self._log = log

    def write(self, step, kind, values):
        super().write(step, kind, values)
        self.slots_written += 1
        self._log("store", step, self.name, kind.value)

    def _add(self, step, slot, values):
        added = super()._add(step, slot, values)
        self.written += added
        return added

    def read(self, step):
        slot = super().read(step)
        self.read_bytes += sum(slot.values.values())
        self.slots_read += 1
        self._log("load", step, self.name, slot.kind.value)
        return slot

    def take(self, step):
        slot = self.read(step)
        self.delete(step)
        return slot


class _SyntheticModel(IndexedKeys):
    def __init__(self, restart_bytes: int, adjoint_bytes: int, log):
        self.index = TapeIndex()
        self._sizes = {"u": max(1, restart_bytes), "a": adjoint_bytes}
        self._log = log

    def tape_step(self, n: int) -> None:
        adjoint = (("a", n),) if self._sizes["a"] else ()
        self.index.add_step([BlockRecord(reads=(("u", n),), writes=(("u", n + 1), *adjoint),
                                         adjoint_reads=adjoint)])

    def values(self, keys, step) -> dict:
        return {key: self._sizes[key[0]] for key in keys}

    def load(self, values: Mapping) -> None:
        pass

    def nbytes(self, values: Mapping) -> int:
        return sum(values.values())

    def free(self, key) -> None:
        pass

    def run_forward(self, n: int) -> None:
        self._log("forward", n, "WORK")

    def run_reverse(self, n: int, markings: bool) -> None:
        self._log("adjoint", n, "WORK")


def simulate(schedule, n_steps: int, restart_bytes: int, adjoint_bytes: int,
             record: bool = False) -> Usage:
    """Run ``schedule`` (unused; it is not iterated itself) over ``n_steps`` synthetic steps.

    ``record``: keep every event and the bytes held after it, for plots.
    """
    events, storage, levels = [], [], {}

    def log(what, step, level, kind=""):
        if record:
            events.append(Event(what, int(step), level, kind))
            storage.append({lv.name: sum(lv.bytes_held(k) for k in DataKind)
                            for lv in levels.values()})

    def make_level(storage_type: StorageType):
        levels[storage_type] = _CountingLevel(storage_type.name, log)
        return levels[storage_type]

    model = _SyntheticModel(restart_bytes, adjoint_bytes, log)
    driver = StepDriver(schedule, model, make_level)
    for n in range(n_steps):
        model.tape_step(n)
        log("forward", n, "WORK")
        if n < n_steps - 1:
            driver.taped_step(n)
    driver.finish_taping()
    driver.reverse(False)
    peaks = dict(driver.stats.peak_total_bytes)
    usage = Usage(driver.stats.forward_steps, driver.stats.reverse_steps, peaks,
                  {lv.name: lv.written for lv in levels.values()},
                  {lv.name: lv.read_bytes for lv in levels.values()},
                  {lv.name: lv.slots_written for lv in levels.values()},
                  {lv.name: lv.slots_read for lv in levels.values()}, events, storage)
    driver.close()
    return usage
