"""Checkpoint slots on disk: one HDF5 file per slot and MPI rank, removed when freed.

Array-backed values (Firedrake Functions) are written as datasets; small values
without an array (floats, Constants, meshes) stay in memory beside the file.
Every file is deleted when its slot is freed, and the whole directory when the
storage is cleared, garbage-collected or the process exits.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import weakref
from collections.abc import Hashable, Mapping
from typing import Any

import h5py

from ...errors import ConfigurationError, StorageError
from .base import Slot, StorageLevel


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class DiskStorage(StorageLevel):
    """Slots in HDF5 files under a private directory created inside ``disk_dir``.

    Parameters
    ----------
    codec
        Copies, sizes and serialises values.
    disk_dir
        An existing, writable directory; fe_adjoint creates a private folder in it.
    comm
        An mpi4py communicator; each rank writes its own files. ``None`` means serial.
    """

    name = "DISK"

    def __init__(self, codec, disk_dir: str | os.PathLike, comm=None):
        super().__init__(codec)
        self._rank = comm.rank if comm is not None else 0
        path = None
        if self._rank == 0:
            path = self._make_private_dir(os.fspath(disk_dir))
        if comm is not None:
            path = comm.bcast(path, root=0)
        if isinstance(path, Exception):
            raise path
        self.path = path
        # A slot's values without arrays stay in memory; arrays live in files, described
        # here by what rebuilds them and their local shape.
        self._templates: dict[int, dict[Hashable, tuple[Any, tuple]]] = {}
        self._names: dict[Hashable, str] = {}
        if self._rank == 0:
            self._finalizer = weakref.finalize(self, _remove_tree, path)
        else:
            self._finalizer = weakref.finalize(self, lambda: None)

    @staticmethod
    def _make_private_dir(disk_dir: str) -> str | Exception:
        if not os.path.isdir(disk_dir):
            return ConfigurationError(
                f"disk_dir {disk_dir!r} does not exist; create it or pass another disk_dir="
            )
        try:
            return tempfile.mkdtemp(prefix="fe_adjoint-", dir=disk_dir)
        except OSError as exc:
            return ConfigurationError(
                f"cannot create checkpoint files in disk_dir {disk_dir!r} ({exc.strerror}); "
                "pass a writable disk_dir="
            )

    def _file(self, step: int) -> str:
        return os.path.join(self.path, f"step{step}_rank{self._rank}.h5")

    def _name(self, key: Hashable) -> str:
        return self._names.setdefault(key, f"v{len(self._names)}")

    def _add(self, step: int, slot: Slot, values: Mapping[Hashable, Any]) -> int:
        templates = self._templates.setdefault(step, {})
        arrays = {}
        for key, value in values.items():
            if key in slot.values or key in templates:
                continue
            array = self.codec.to_array(value)
            if array is None:
                slot.values[key] = self.codec.copy(value)
            else:
                arrays[key] = array
                templates[key] = (self.codec.template(value), array.shape)
        if arrays:
            self._write_arrays(step, arrays)
        return sum(a.nbytes for a in arrays.values())

    def _write_arrays(self, step: int, arrays: dict) -> None:
        path = self._file(step)
        try:
            with h5py.File(path, "a") as f:
                for key, array in arrays.items():
                    f.create_dataset(self._name(key), data=array)
        except OSError as exc:
            self.delete(step)
            reason = "the disk is full" if getattr(exc, "errno", None) == errno.ENOSPC else str(exc)
            raise StorageError(
                f"cannot write the checkpoint of step {step} to {path}: {reason}; "
                "free space or pass another disk_dir= to enable_checkpointing"
            ) from exc

    def read(self, step: int) -> Slot:
        slot = self._slot(step)
        values = {key: self.codec.copy(v) for key, v in slot.values.items()}
        templates = self._templates[step]
        if templates:
            path = self._file(step)
            if not os.path.exists(path):
                raise StorageError(
                    f"checkpoint file {path} of step {step} is missing; it was deleted while "
                    "the run was going: keep disk_dir untouched until the adjoint has finished"
                )
            with h5py.File(path, "r") as f:
                for key, (template, expected) in templates.items():
                    array = f[self._name(key)][...]
                    if array.shape != expected:
                        raise StorageError(
                            f"checkpoint {path} holds {array.shape} values for {key} but this "
                            f"process expects {expected}: the MPI partition differs from the one "
                            "that wrote it; run with the same number of processes and mesh"
                        )
                    values[key] = self.codec.from_array(template, array)
        return Slot(slot.kind, values)

    def _forget(self, step: int) -> None:
        self._templates.pop(step, None)
        try:
            os.remove(self._file(step))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Free every slot and remove the private directory."""
        self.clear()
        self._finalizer()
