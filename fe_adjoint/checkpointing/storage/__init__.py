"""Storage levels holding per-step checkpoint data, keyed by step.

:class:`~fe_adjoint.storage.disk.DiskStorage` (HDF5) is imported from its module.
"""

from .base import DataKind, Slot, StorageLevel
from .ram import RamStorage

__all__ = ["DataKind", "Slot", "StorageLevel", "RamStorage"]
