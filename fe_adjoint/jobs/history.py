"""The record of an optimisation, written as it runs, from which a resubmitted job continues.

The folder given as ``history=`` to :func:`fe_adjoint.minimize` holds:

- ``calls/NNNNNN.npz``: every value the optimiser asked for, in order: its kind (``J`` or
  ``dJ``), the control vector it was asked at and the answer;
- ``iterations.json``: one entry per completed iteration (J, the norm of the gradient
  vector, the evaluations so far, seconds since the first call);
- ``control.npy``: the control vector of the last completed iteration;
- ``meta.json``: the method, the length of the control vector, the number of processes and
  a fingerprint of the DoF order (the mesh's distribution and numbering);
- ``result.json``, once the optimisation has ended.

Every file is written whole or not at all (a temporary name, then a rename), so a job killed
at any moment leaves a history that the next job can read. Rank 0 writes; every rank gets
what rank 0 read. The control vector is the optimiser's own (gathered on every rank, in the
MPI partition's order), so a history continues under the same number of processes and the
same distribution of the mesh, which :meth:`OptimisationHistory.start` checks.
"""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np

from ..errors import ConfigurationError
from .partition import REPRODUCIBLE_HINT

_PARTIAL = ".partial"


class OptimisationHistory:
    """An optimisation's calls and iterations in the folder ``path`` (made if missing)."""

    def __init__(self, path: str | os.PathLike, comm=None):
        self.path = os.path.abspath(os.fspath(path))
        self.comm = comm
        self.writer = comm is None or comm.rank == 0
        loaded = self._load() if self.writer else None
        if comm is not None:
            loaded = comm.bcast(loaded, root=0)
        if isinstance(loaded, Exception):
            raise loaded
        self.meta, self.calls, self.iterations = loaded
        self.replayed = len(self.calls)  # calls answered from the folder, not run
        self._last_control = None  # the last iteration's control, once this process saw one
        self._t0 = time.perf_counter() - (self.iterations[-1]["seconds"] if self.iterations
                                          else 0.0)

    # -- reading -------------------------------------------------------------------------
    def _load(self):
        try:
            os.makedirs(os.path.join(self.path, "calls"), exist_ok=True)
        except OSError as exc:
            return ConfigurationError(
                f"cannot create the optimisation history {self.path} ({exc.strerror}); "
                "pass a writable folder as history="
            )
        for folder in (self.path, os.path.join(self.path, "calls")):
            for name in os.listdir(folder):
                if name.endswith(_PARTIAL):  # a job ended while writing it
                    os.remove(os.path.join(folder, name))
        calls = []
        for name in sorted(os.listdir(os.path.join(self.path, "calls"))):
            with np.load(os.path.join(self.path, "calls", name)) as data:
                calls.append((str(data["kind"]), data["x"], data["value"]))
        return self._read_json("meta.json", {}), calls, self._read_json("iterations.json", [])

    def _read_json(self, name, default):
        try:
            with open(os.path.join(self.path, name)) as f:
                return json.load(f)
        except FileNotFoundError:
            return default

    def start(self, method: str, size: int, partition: str | None = None) -> None:
        """Check that this history belongs to this optimisation (or begin it).

        ``partition`` fingerprints the control vector's DoF order
        (:func:`~fe_adjoint.jobs.partition.partition_fingerprint`).
        """
        meta = {"method": method, "size": size,
                "processes": 1 if self.comm is None else self.comm.size,
                "partition": partition}
        if not self.meta:
            self.meta = meta
            self._write_json("meta.json", meta)
            return
        for key, found in self.meta.items():
            if key == "partition" and meta[key] != found:
                raise ConfigurationError(
                    f"the optimisation history {self.path} was written with the mesh "
                    "distributed or numbered differently (its control vectors are in another "
                    "DoF order than this run's). Keep reorder= and the number of processes "
                    f"as before and {REPRODUCIBLE_HINT}; or pass a new folder as history= to "
                    "start afresh"
                )
            if meta.get(key) != found:
                raise ConfigurationError(
                    f"the optimisation history {self.path} was written with {key} {found!r} "
                    f"but this run has {meta.get(key)!r}; run as before, or pass a new folder "
                    "as history= (or remove this one) to start afresh"
                )

    def answer(self, index: int, kind: str, x: np.ndarray):
        """The recorded answer of call ``index`` if there is one; None when it must run."""
        if index >= len(self.calls):
            return None
        recorded_kind, recorded_x, value = self.calls[index]
        if recorded_kind != kind or not np.array_equal(recorded_x, x):
            raise ConfigurationError(
                f"the optimisation history {self.path} belongs to another run: its call "
                f"{index} asked for {recorded_kind} at another control than this run's "
                f"{kind} (another initial control, problem, optimiser option or MPI "
                "partition); pass a new folder as history= (or remove this one) to start "
                "afresh"
            )
        return value

    # -- writing -------------------------------------------------------------------------
    def record_call(self, kind: str, x: np.ndarray, value) -> None:
        """Append a call that has just run."""
        value = np.asarray(value, dtype=float)
        self.calls.append((kind, np.array(x, copy=True), value))
        if self.writer:
            buffer = io.BytesIO()
            np.savez(buffer, kind=kind, x=x, value=value)
            self._write(os.path.join("calls", f"{len(self.calls) - 1:06d}.npz"),
                        buffer.getvalue())

    def record_iteration(self, x: np.ndarray, J: float, gradient_norm: float) -> dict:
        """Append a completed iteration; keep its control as the last one."""
        entry = {"iteration": len(self.iterations) + 1, "J": J,
                 "gradient_norm": gradient_norm, "evaluations": self.evaluations,
                 "seconds": round(time.perf_counter() - self._t0, 3)}
        self.iterations.append(entry)
        self._last_control = np.array(x, copy=True)
        if self.writer:
            buffer = io.BytesIO()
            np.save(buffer, x)
            self._write("control.npy", buffer.getvalue())
            self._write_json("iterations.json", self.iterations)
        return entry

    def finish(self, message: str) -> None:
        """Note that the optimisation has ended (replaying this history then runs nothing)."""
        last = self.iterations[-1] if self.iterations else {}
        self._write_json("result.json", {"message": message,
                                         "iterations": len(self.iterations),
                                         "J": last.get("J"), "evaluations": self.evaluations})

    @property
    def evaluations(self) -> int:
        """How many times J was evaluated, in all the jobs of this history."""
        return sum(kind == "J" for kind, _, _ in self.calls)

    def last_control(self) -> np.ndarray | None:
        """The control vector of the last completed iteration (None before the first)."""
        if self._last_control is not None:
            return self._last_control
        try:
            return np.load(os.path.join(self.path, "control.npy"))
        except FileNotFoundError:
            return None

    def _write_json(self, name: str, value) -> None:
        if self.writer:
            self._write(name, json.dumps(value, indent=1).encode())

    def _write(self, name: str, data: bytes) -> None:
        final = os.path.join(self.path, name)
        partial = final + _PARTIAL
        with open(partial, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, final)
