"""Checkpoint slots on disk: one HDF5 file per slot and MPI rank, removed when freed.

Array-backed values (Firedrake Functions) are written as datasets; small values
without an array (floats, Constants, meshes) stay in memory beside the file.
Every file is deleted when its slot is freed, and the whole directory when the
storage is cleared, garbage-collected or the process exits or gets a SIGTERM
(:mod:`~fe_adjoint.checkpointing.storage.folders`).
"""

from __future__ import annotations

import errno
import os
import weakref
import zlib
from collections.abc import Hashable, Mapping
from typing import Any

import h5py

from ...errors import ConfigurationError, StorageError
from . import folders
from .base import Slot, StorageLevel

_WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file size limit is reached (ulimit -f, or the file system's)",
}


class DiskStorage(StorageLevel):
    """Slots in HDF5 files under a private directory created inside ``disk_dir``.

    Parameters
    ----------
    codec
        Copies, sizes and serialises values.
    disk_dir
        An existing, writable directory; fe_adjoint creates a private folder in it.
    comm
        An mpi4py communicator; each rank writes its own files in a folder of its own, so
        ``disk_dir`` may be node-local. ``None`` means serial.
    """

    name = "DISK"

    def __init__(self, codec, disk_dir: str | os.PathLike, comm=None):
        super().__init__(codec)
        self._rank = comm.rank if comm is not None else 0
        # A folder per process: disk_dir may be node-local scratch ($TMPDIR on a cluster).
        path = self._make_private_dir(os.fspath(disk_dir))
        outcomes = comm.allgather(path) if comm is not None else [path]
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            if not isinstance(path, Exception):
                folders.remove(path)
            raise failed[0]
        self.path = path
        # A slot's values without arrays stay in memory; arrays live in files, described
        # here by what rebuilds them and their local shape.
        self._templates: dict[int, dict[Hashable, tuple[Any, tuple]]] = {}
        self._names: dict[Hashable, str] = {}
        self._finalizer = weakref.finalize(self, folders.remove, path)

    @staticmethod
    def _make_private_dir(disk_dir: str) -> str | Exception:
        if os.path.exists(disk_dir) and not os.path.isdir(disk_dir):
            return ConfigurationError(
                f"disk_dir {disk_dir!r} is a file, not a directory; pass a directory as "
                "disk_dir="
            )
        if not os.path.isdir(disk_dir):
            return ConfigurationError(
                f"disk_dir {disk_dir!r} does not exist; create it or pass another disk_dir="
            )
        try:
            return folders.make_private_dir(disk_dir)
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
                f.attrs["step"] = step
                for key, array in arrays.items():
                    dataset = f.create_dataset(self._name(key), data=array)
                    dataset.attrs["crc32"] = zlib.crc32(array.tobytes())
        except OSError as exc:
            self.delete(step)
            reason = _WRITE_FAILURES.get(getattr(exc, "errno", None), str(exc))
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
            try:
                arrays = self._read_arrays(path, step, templates)
            except (OSError, KeyError, ValueError) as exc:
                raise StorageError(
                    f"checkpoint file {path} of step {step} cannot be read ({exc}): it was "
                    "damaged or replaced while the run was going; keep disk_dir untouched "
                    "until the adjoint has finished (the next derivative recomputes it)"
                ) from exc
            for key, (template, expected) in templates.items():
                array = arrays[key]
                if array.shape != expected:
                    raise StorageError(
                        f"checkpoint {path} holds {array.shape} values for {key} but this "
                        f"process expects {expected}: the MPI partition differs from the one "
                        "that wrote it; run with the same number of processes and mesh"
                    )
                values[key] = self.codec.from_array(template, array)
        return Slot(slot.kind, values)

    def _read_arrays(self, path: str, step: int, templates) -> dict:
        """The arrays of a step's file, each checked against the checksum written with it."""
        arrays = {}
        with h5py.File(path, "r") as f:
            if f.attrs.get("step") != step:
                raise ValueError(f"the file holds step {f.attrs.get('step')}")
            for key in templates:
                dataset = f[self._name(key)]
                array = dataset[...]
                if zlib.crc32(array.tobytes()) != dataset.attrs["crc32"]:
                    raise ValueError(f"the checksum of {key} does not match")
                arrays[key] = array
        return arrays

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
