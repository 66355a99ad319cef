"""Counters of one checkpointed tape: steps run, bytes stored per level and kind, time per phase."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..checkpointing.storage.base import DataKind
from .progress import ProgressBars


@dataclass
class RunStats:
    """What the driver counts; ``as_dict`` gives the public ``fe_adjoint.stats()`` mapping."""

    forward_steps: int = 0
    reverse_steps: int = 0
    peak_bytes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            level: {kind.value: 0 for kind in DataKind} for level in ("RAM", "DISK", "WORK")
        }
    )
    peak_total_bytes: dict[str, int] = field(
        default_factory=lambda: {"RAM": 0, "DISK": 0, "WORK": 0})  # both kinds at once
    seconds: dict[str, float] = field(default_factory=lambda: {"forward": 0.0, "reverse": 0.0})
    linear_solves: dict[str, int] = field(
        default_factory=lambda: {"tangent": 0, "second_order": 0})
    trace_peak_jets: int = 0
    captured_inputs: int = 0  # values read from outside the tape, held for its life
    captured_bytes: int = 0
    # taped solves of the solvers given as reuse_operators: operator kept or assembled
    taped_solves: dict[str, int] = field(default_factory=lambda: {"kept": 0, "assembled": 0})
    progress_every: int | None = None
    # per-step costs the planner reads: seconds and count by kind (taped, replay, adjoint)
    step_seconds: dict[str, list] = field(
        default_factory=lambda: {"taped": [0.0, 0], "replay": [0.0, 0], "adjoint": [0.0, 0]})
    step_bytes: dict[str, int] = field(
        default_factory=lambda: {"restart_bytes": 0, "adjoint_bytes": 0})
    schedule: str = ""  # what a planned run chose
    bars: ProgressBars | None = None  # progress bars, when drawn
    stored_now: int = 0  # checkpoint bytes held at the last sample
    reversible: dict | None = None  # a reversible schedule's anchors, drift and fallbacks

    @contextmanager
    def phase(self, name: str):
        """Add the wall time spent inside the block to phase ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    @contextmanager
    def timed_step(self, kind: str):
        """Count one step of ``kind`` (replay, adjoint) and the time spent inside the block."""
        start = time.perf_counter()
        yield
        self.add_step_time(kind, time.perf_counter() - start)

    def add_step_time(self, kind: str, seconds: float) -> None:
        entry = self.step_seconds[kind]
        entry[0] += seconds
        entry[1] += 1

    def costs(self) -> dict:
        """Mean seconds per taped, replayed and adjoint step, and a step's largest data.

        A mean is None if no such step ran; the bytes are those measured while taping.
        """
        means = {f"{'forward' if kind == 'taped' else kind}_s": (total / count if count else None)
                 for kind, (total, count) in self.step_seconds.items()}
        return {**means, **self.step_bytes}

    def sample(self, levels, held_bytes: int) -> None:
        """Record the bytes the storage levels and working memory hold now."""
        for level in levels.values():  # NoneCheckpointSchedule's NONE storage is a DISK level
            peaks = self.peak_bytes[level.name]
            for kind in DataKind:
                peaks[kind.value] = max(peaks[kind.value], level.peak_bytes[kind])
            totals = self.peak_total_bytes
            totals[level.name] = max(totals[level.name], level.peak_total)
        work = self.peak_bytes["WORK"]
        work[DataKind.ADJOINT.value] = max(work[DataKind.ADJOINT.value], held_bytes)
        self.stored_now = held_bytes + sum(level.bytes_held(kind) for level in levels.values()
                                           for kind in DataKind)
        self.peak_total_bytes["WORK"] = work[DataKind.ADJOINT.value]

    def count_trace(self, solves, peak_jets: int) -> None:
        """Add a Hessian-trace sweep's linear solves and record the jets it held at most."""
        for kind, count in solves.items():
            self.linear_solves[kind] += count
        self.trace_peak_jets = max(self.trace_peak_jets, peak_jets)

    def begin_pass(self, phase: str, total: int | None) -> None:
        """A pass (taping, forward, reverse, sweep) of ``total`` steps starts."""
        if self.bars is not None:
            self.bars.begin(phase, total)

    def end_pass(self) -> None:
        if self.bars is not None:
            self.bars.end()

    def progress(self, phase: str, step: int) -> None:
        """Step ``step`` of ``phase`` is done.

        Advances the bar; prints a line every ``progress_every`` steps, if asked for.
        """
        if self.bars is not None:
            self.bars.advance(phase, self.stored_now)
        if self.progress_every and step % self.progress_every == 0:
            print(f"[fe_adjoint] {phase} step {step}", file=sys.stderr, flush=True)

    def as_dict(self) -> dict:
        """The public statistics mapping."""
        return {
            "forward_steps": self.forward_steps,
            "reverse_steps": self.reverse_steps,
            "peak_bytes": {level: dict(kinds) for level, kinds in self.peak_bytes.items()},
            "peak_total_bytes": dict(self.peak_total_bytes),
            "seconds": dict(self.seconds),
            "linear_solves": dict(self.linear_solves),
            "trace_peak_jets": self.trace_peak_jets,
            "captured_inputs": self.captured_inputs,
            "captured_bytes": self.captured_bytes,
            "taped_solves": dict(self.taped_solves),
            "costs": self.costs(),
            **({"schedule": self.schedule} if self.schedule else {}),
            **({"reversible": self.reversible} if self.reversible is not None else {}),
        }


def format_report(stats: dict) -> str:
    """Render a ``stats()`` mapping as a readable table."""
    lines = [
        "fe_adjoint checkpointing report",
        *([f"  schedule          : {stats['schedule']}"] if stats.get("schedule") else []),
        f"  forward steps run : {stats['forward_steps']}",
        f"  reverse steps run : {stats['reverse_steps']}",
        f"  time forward      : {stats['seconds']['forward']:.3f} s",
        f"  time reverse      : {stats['seconds']['reverse']:.3f} s",
    ]
    solves = stats["linear_solves"]
    if any(solves.values()):
        lines.append(f"  trace solves      : {solves['tangent']} tangent, "
                     f"{solves['second_order']} second-order")
    lines.append(f"  captured inputs   : {stats['captured_inputs']} values, "
                 f"{stats['captured_bytes']:,} bytes (read from outside the tape, kept)")
    taped = stats.get("taped_solves", {})  # older saved reports lack it
    if any(taped.values()):
        lines.append(f"  taped solves      : {taped['kept']} kept their operator, "
                     f"{taped['assembled']} assembled it (reuse_operators)")
    lines.append("  peak bytes        :  level   restart      adjoint   at once")
    for level, kinds in stats["peak_bytes"].items():
        lines.append(
            f"                       {level:<5} {kinds['restart']:>10,} {kinds['adjoint']:>12,}"
            f" {stats['peak_total_bytes'][level]:>12,}"
        )
    return "\n".join(lines)
