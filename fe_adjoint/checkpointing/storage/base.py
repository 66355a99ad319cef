"""The keyed interface every storage level implements; no Firedrake import.

A level holds at most one :class:`Slot` per step. A slot is either the *restart*
data of a step (what restarts the forward at the start of the step) or its
*adjoint* data (what the adjoint of the step reads). Values are opaque to the
level except through the :class:`ValueCodec` it is given.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class DataKind(enum.Enum):
    """What a slot holds."""

    RESTART = "restart"
    ADJOINT = "adjoint"


@dataclass
class Slot:
    """The data of one step on one level: its kind and a value per key."""

    kind: DataKind
    values: dict[Hashable, Any] = field(default_factory=dict)


class ValueCodec(Protocol):
    """How a storage level copies, sizes and serialises checkpoint values."""

    def copy(self, value: Any) -> Any:
        """Return an independent copy of ``value``."""

    def nbytes(self, value: Any) -> int:
        """Return the bytes ``value`` occupies on this process."""

    def to_array(self, value: Any) -> Any | None:
        """Return a NumPy array of ``value``'s local data, or None if it is not array-backed."""

    def template(self, value: Any) -> Any:
        """Return what :meth:`from_array` needs to rebuild ``value`` (not the data)."""

    def from_array(self, template: Any, array: Any) -> Any:
        """Return a new value built from ``template`` holding ``array``."""


class StorageLevel(ABC):
    """A storage level: ``write``, ``extend``, ``read``, ``delete`` and ``in``, keyed by step.

    The base class keeps the slots' bookkeeping (kind, bytes per kind and their
    peak); a level decides where values live by implementing ``_add``,
    ``read`` and ``_forget``.
    """

    name: str

    def __init__(self, codec: ValueCodec):
        self.codec = codec
        self._slots: dict[int, Slot] = {}
        self._slot_bytes: dict[int, int] = {}
        self._bytes: dict[DataKind, int] = {kind: 0 for kind in DataKind}
        self.peak_bytes: dict[DataKind, int] = {kind: 0 for kind in DataKind}
        self.peak_total = 0  # the most bytes held at once, both kinds together

    def __contains__(self, step: int) -> bool:
        """Whether a slot for ``step`` is held."""
        return step in self._slots

    def kind(self, step: int) -> DataKind:
        """The kind of the slot held for ``step``."""
        return self._slot(step).kind

    def steps(self) -> list[int]:
        """The steps with a slot."""
        return sorted(self._slots)

    def slot_bytes(self, step: int) -> int:
        """Bytes the slot of ``step`` holds on this process."""
        return self._slot_bytes[step]

    def write(self, step: int, kind: DataKind, values: Mapping[Hashable, Any]) -> None:
        """Store copies of ``values`` as the slot of ``step``, replacing any older slot."""
        self.delete(step)
        self._slots[step] = Slot(kind)
        self._slot_bytes[step] = 0
        self.extend(step, values)

    def extend(self, step: int, values: Mapping[Hashable, Any]) -> None:
        """Add copies of the ``values`` not yet held to the slot of ``step``."""
        slot = self._slot(step)
        added = self._add(step, slot, values)
        self._slot_bytes[step] += added
        self._account(slot.kind, added)

    @abstractmethod
    def _add(self, step: int, slot: Slot, values: Mapping[Hashable, Any]) -> int:
        """Store the ``values`` the slot lacks; return the bytes added."""

    @abstractmethod
    def read(self, step: int) -> Slot:
        """Return the slot of ``step``; its values are fresh objects the caller may keep."""

    def take(self, step: int) -> Slot:
        """Return the slot of ``step`` and free it (a move)."""
        slot = self.read(step)
        self.delete(step)
        return slot

    def delete(self, step: int) -> None:
        """Free the slot of ``step``; a missing slot is not an error."""
        slot = self._slots.pop(step, None)
        if slot is not None:
            self._account(slot.kind, -self._slot_bytes.pop(step))
            self._forget(step)

    def _forget(self, step: int) -> None:  # noqa: B027 - most levels keep nothing more
        """Release what the level keeps for ``step`` beyond its slot."""

    def clear(self) -> None:
        """Free every slot."""
        for step in self.steps():
            self.delete(step)

    def bytes_held(self, kind: DataKind) -> int:
        """Bytes of ``kind`` held now on this process."""
        return self._bytes[kind]

    def _account(self, kind: DataKind, delta: int) -> None:
        self._bytes[kind] += delta
        self.peak_bytes[kind] = max(self.peak_bytes[kind], self._bytes[kind])
        self.peak_total = max(self.peak_total, sum(self._bytes.values()))

    def _slot(self, step: int) -> Slot:
        try:
            return self._slots[step]
        except KeyError:
            from ...errors import StorageError

            raise StorageError(
                f"no checkpoint for step {step} on {self.name}; the schedule asked to read "
                "data that was never written or was already deleted (was the schedule "
                "re-used for another run? pass a fresh schedule to enable_checkpointing)"
            ) from None
