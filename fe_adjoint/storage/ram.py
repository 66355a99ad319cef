"""Checkpoint slots held in host memory."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from .base import DataKind, Slot, StorageLevel


class RamStorage(StorageLevel):
    """Slots held as Python objects; writes copy, reads hand out copies."""

    name = "RAM"

    def __init__(self, codec):
        super().__init__(codec)
        self._slots: dict[int, Slot] = {}
        self._slot_bytes: dict[int, int] = {}

    def __contains__(self, step: int) -> bool:
        return step in self._slots

    def kind(self, step: int) -> DataKind:
        return self._slot(step).kind

    def write(self, step: int, kind: DataKind, values: Mapping[Hashable, Any]) -> None:
        self.delete(step)
        self._slots[step] = Slot(kind)
        self._slot_bytes[step] = 0
        self.extend(step, values)

    def extend(self, step: int, values: Mapping[Hashable, Any]) -> None:
        slot = self._slot(step)
        added = 0
        for key, value in values.items():
            if key not in slot.values:
                slot.values[key] = self.codec.copy(value)
                added += self.codec.nbytes(value)
        self._slot_bytes[step] += added
        self._account(slot.kind, added)

    def read(self, step: int) -> Slot:
        slot = self._slot(step)
        return Slot(slot.kind, {key: self.codec.copy(v) for key, v in slot.values.items()})

    def take(self, step: int) -> Slot:
        """Return the slot of ``step`` without copying and free it (a move)."""
        slot = self._slot(step)
        self._account(slot.kind, -self._slot_bytes.pop(step))
        del self._slots[step]
        return slot

    def delete(self, step: int) -> None:
        if step in self._slots:
            self.take(step)

    def steps(self) -> list[int]:
        return sorted(self._slots)

    def _slot(self, step: int) -> Slot:
        try:
            return self._slots[step]
        except KeyError:
            raise self._missing(step) from None
