"""What one time step costs: seconds per phase, bytes per kind of data, disk bandwidth."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace

from ..errors import ConfigurationError


@dataclass(frozen=True)
class StepCosts:
    """Per-step costs the planner's model uses.

    Attributes
    ----------
    forward_s, replay_s, adjoint_s
        Seconds for one taped forward step, one recomputed (replayed) forward step and one
        adjoint step.
    restart_bytes, adjoint_bytes
        Bytes of one step's restart data (what restarts the forward there) and adjoint data
        (what its adjoint reads), on this process.
    disk_write_bps, disk_read_bps
        Disk bandwidth, bytes per second; ``ram_bps`` that of copies in memory.
    disk_latency_s
        Seconds to create (or open) and close one checkpoint file, beyond its bytes.
    """

    forward_s: float
    adjoint_s: float
    restart_bytes: int
    adjoint_bytes: int
    replay_s: float | None = None
    disk_write_bps: float = 500e6
    disk_read_bps: float = 1e9
    ram_bps: float = 5e9
    disk_latency_s: float = 0.0

    def __post_init__(self):
        if self.replay_s is None:
            object.__setattr__(self, "replay_s", self.forward_s)
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value < 0 or (f.name.endswith("bps") and value == 0):
                raise ConfigurationError(f"StepCosts.{f.name} must be positive; got {value}")

    def with_disk(self, write_bps: float, read_bps: float, latency_s: float) -> StepCosts:
        """These costs with the given disk bandwidth and file latency."""
        return replace(self, disk_write_bps=write_bps, disk_read_bps=read_bps,
                       disk_latency_s=latency_s)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_stats(cls, stats: dict, **given) -> StepCosts:
        """Costs read from a run's ``fe_adjoint.stats()`` (or a saved report's ``stats``).

        The run's ``costs`` entry (measured while taping and replaying) is used where present;
        ``given`` overrides any field.
        """
        measured = dict(stats.get("costs") or {})
        if not measured:
            seconds, forward, reverse = stats["seconds"], stats["forward_steps"], \
                stats["reverse_steps"]
            if not forward or not reverse:
                raise ConfigurationError(
                    "these statistics hold no forward and adjoint step; take them after "
                    "computing a gradient")
            measured = {"forward_s": seconds["forward"] / forward,
                        "adjoint_s": seconds["reverse"] / reverse,
                        "restart_bytes": 0, "adjoint_bytes": 0}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**measured, **given}.items() if k in names})

    @classmethod
    def from_report(cls, path, **given) -> StepCosts:
        """Costs read from a report saved by :func:`fe_adjoint.save_report`."""
        with open(path) as file:
            return cls.from_stats(json.load(file)["stats"], **given)


def measure_disk(disk_dir=None, nbytes: int = 16 * 2**20) -> tuple[float, float]:
    """``(write, read)`` bandwidth of ``disk_dir`` in bytes per second (a scratch file).

    The write is flushed to the device (``fsync``); the read may come from the page cache,
    as a checkpoint read back soon after its write usually does.
    """
    block = os.urandom(2**20)
    count = max(1, nbytes // len(block))
    fd, path = tempfile.mkstemp(prefix="fe_adjoint-bandwidth-", dir=disk_dir)
    try:
        start = time.perf_counter()
        with os.fdopen(fd, "wb") as file:
            for _ in range(count):
                file.write(block)
            file.flush()
            os.fsync(file.fileno())
        write = time.perf_counter() - start
        start = time.perf_counter()
        with open(path, "rb") as file:
            while file.read(2**22):
                pass
        read = time.perf_counter() - start
    finally:
        os.unlink(path)
    size = count * len(block)
    return size / max(write, 1e-9), size / max(read, 1e-9)


def measure_slots(level, values, nbytes: int, write_bps: float, read_bps: float,
                  repeats: int = 4) -> float:
    """Seconds one checkpoint slot costs on ``level`` beyond its bytes (file handling).

    ``values`` (``nbytes`` bytes) are written, read back and freed ``repeats`` times.
    """
    from ..checkpointing.storage import DataKind

    start = time.perf_counter()
    for i in range(repeats):
        level.write(-1 - i, DataKind.ADJOINT, values)
        level.read(-1 - i)
        level.delete(-1 - i)
    per_pair = (time.perf_counter() - start) / repeats
    return max(0.0, (per_pair - nbytes / write_bps - nbytes / read_bps) / 2)
