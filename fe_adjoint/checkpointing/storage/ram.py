"""Checkpoint slots held in host memory."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .base import Slot, StorageLevel


class RamStorage(StorageLevel):
    """Slots held as Python objects; writes copy, reads hand out copies, moves hand over."""

    name = "RAM"

    def _add(self, step: int, slot: Slot, values: Mapping[Hashable, Any]) -> int:
        added = 0
        for key, value in values.items():
            if key not in slot.values:
                slot.values[key] = self.codec.copy(value)
                added += self.codec.nbytes(value)
        return added

    def read(self, step: int) -> Slot:
        slot = self._slot(step)
        return Slot(slot.kind, {key: self.codec.copy(v) for key, v in slot.values.items()})

    def take(self, step: int) -> Slot:
        slot = self._slot(step)
        self.delete(step)
        return slot
