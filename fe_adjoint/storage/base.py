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
    """A storage level: ``write``, ``extend``, ``read``, ``delete`` and ``in``, keyed by step."""

    name: str

    def __init__(self, codec: ValueCodec):
        self.codec = codec
        self._bytes: dict[DataKind, int] = {kind: 0 for kind in DataKind}
        self.peak_bytes: dict[DataKind, int] = {kind: 0 for kind in DataKind}

    @abstractmethod
    def __contains__(self, step: int) -> bool:
        """Whether a slot for ``step`` is held."""

    @abstractmethod
    def kind(self, step: int) -> DataKind:
        """The kind of the slot held for ``step``."""

    @abstractmethod
    def write(self, step: int, kind: DataKind, values: Mapping[Hashable, Any]) -> None:
        """Store copies of ``values`` as the slot of ``step``, replacing any older slot."""

    @abstractmethod
    def extend(self, step: int, values: Mapping[Hashable, Any]) -> None:
        """Add copies of the ``values`` not yet held to the slot of ``step``."""

    @abstractmethod
    def read(self, step: int) -> Slot:
        """Return the slot of ``step``; its values are fresh objects the caller may keep."""

    def take(self, step: int) -> Slot:
        """Return the slot of ``step`` and free it (a move)."""
        slot = self.read(step)
        self.delete(step)
        return slot

    @abstractmethod
    def delete(self, step: int) -> None:
        """Free the slot of ``step``; a missing slot is not an error."""

    @abstractmethod
    def steps(self) -> list[int]:
        """The steps with a slot."""

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

    def _missing(self, step: int) -> Exception:
        from ..errors import StorageError

        return StorageError(
            f"no checkpoint for step {step} on {self.name}; the schedule asked to read "
            "data that was never written or was already deleted (was the schedule "
            "re-used for another run? pass a fresh schedule to enable_checkpointing)"
        )
