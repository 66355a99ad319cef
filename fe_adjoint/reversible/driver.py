"""The adjoint of a reversible schedule: each segment run backwards from the next anchor.

Segment ``L..U-1`` starts from the restart data of step ``U`` (its anchor; for the last
segment the final state the tape keeps). For ``n = U-1`` down to ``L`` step ``n`` is run
backwards (:mod:`.inverse`), which gives every value its adjoint reads, and its adjoint runs
at once: one inverse step per forward step, two states in memory.

Side data: after every forward step (taped or replayed) the rows of its explicit solves'
inputs that are unstable backwards are stored (:meth:`.inverse.StepInverter.record`,
:mod:`.solve_inverse`), in RAM, counted in ``stats()["reversible"]["side_bytes"]``.

Drift: at step ``L`` the reconstructed restart data is compared with the stored anchor
(relative to the larger of the two states' sizes at the segment's ends), which then
replaces it; a segment
whose relative drift exceeds the schedule's tolerance has its adjoint contributions undone
and is run again the ordinary way -- forward from its anchor, every step's adjoint data
held, then its adjoints -- with a warning. Step 0 (the script's set-up and the first step,
restarted from the initial values) and Hessian passes (which need tangents the inverse
steps do not give) run that ordinary way.
"""

from __future__ import annotations

import warnings

from ..checkpointing.driver import StepDriver
from ..errors import ConfigurationError


class ReversibleDriver(StepDriver):
    """A :class:`StepDriver` for a :class:`~.schedule.ReversibleSchedule`."""

    def __init__(self, schedule, model, make_level, comm=None, inverter=None):
        super().__init__(schedule, model, make_level, comm)
        self.inverter = inverter
        self._anchors_have_tangents = False
        self.stats.reversible = {"segments": len(schedule.segments), "stored_states": 0,
                                 "inverse_steps": 0, "drift": [], "fallback_segments": 0,
                                 "anchor_bytes": 0, "side_bytes": 0}

    def forward(self) -> None:
        if self.inverter is not None:
            self.inverter.side.clear()
        super().forward()
        self._anchors_have_tangents = self.model.tangents

    def _step_ran(self, n: int) -> None:
        if self.inverter is not None:  # side data: the unstable rows of explicit solves
            self.inverter.record(n)

    def _ready_for_reverse(self) -> None:
        if self._state in ("forward", "reverse done") \
                and self._anchors_have_tangents == self.model.tangents:
            return  # the anchors serve every adjoint at these controls
        if self._state == "failed":
            super()._ready_for_reverse()
        else:
            self.forward()

    def _run_adjoint(self) -> None:
        schedule = self._pristine
        level = self._level(schedule.storage)
        info = self.stats.reversible
        info["stored_states"] = 1 + sum(  # the final state, and the anchors that hold any
            1 for n in level.steps() if level.slot_bytes(n))
        info["anchor_bytes"] = sum(level.slot_bytes(n) for n in level.steps())
        info["side_bytes"] = self.inverter.side_bytes() if self.inverter is not None else 0
        self.stats.sample(self.levels, 0)
        info["drift"] = []
        for start, end in reversed(schedule.segments):
            if self.model.second_order or start == 0:
                self._segment_by_replay(level, start, end)
                continue
            undo = _AdjointSnapshot(self.model, start, end)
            drift = self._segment_backwards(level, start, end)
            info["drift"].insert(0, drift)
            if drift > schedule.tolerance:
                warnings.warn(
                    f"fe_adjoint: steps {start}..{end - 1} drifted by {drift:.1e} (relative; "
                    f"tolerance {schedule.tolerance:.0e}) when run backwards; that segment was "
                    "recomputed from its anchor and stored whole", RuntimeWarning, stacklevel=2)
                undo.restore()
                info["fallback_segments"] += 1
                self._segment_by_replay(level, start, end)
        self._replace_frontier(set())

    def _segment_backwards(self, level, start: int, end: int) -> float:
        model = self.model
        if self.inverter is None:
            raise ConfigurationError("the reversible schedule needs coarsen=True")
        scale = 0.0  # the size of the states: the anchor the segment starts from
        if end < model.n_steps:
            anchor = level.read(end).values
            scale = _largest_norm(anchor)
            model.load(anchor)
        drift = 0.0
        for n in range(end - 1, start - 1, -1):
            compared = model.restart_keys(n) if n == start else frozenset()
            reconstructed = self.inverter.run_backwards(n, compared)
            self.stats.reversible["inverse_steps"] += 1
            if not scale:  # the last segment: from the final state
                scale = _largest_norm({k: k.saved_output for k in model.restart_keys(n)})
            if n == start:
                stored = level.read(n).values
                drift = _relative_drift(reconstructed, stored, scale)
                model.load({k: v for k, v in stored.items() if k in model.restart_keys(n)})
            model.run_reverse(n, self._markings)
            self.stats.reverse_steps += 1
            for key in (model.step_keys(n) | _after(model, n)) - model.restart_keys(n):
                model.free(key)
            self.stats.progress("reverse", n)
            self._collector.step_done()
        for key in model.restart_keys(start):
            model.free(key)
        return drift

    def _segment_by_replay(self, level, start: int, end: int) -> None:
        model = self.model
        anchor = level.read(start).values  # read once: on disk a read decodes files
        model.load(anchor)
        self._replace_frontier(set(anchor))
        for n in range(start, end):
            model.run_forward(n)
            self.stats.forward_steps += 1
            self._hold(n, model.adjoint_keys(n))
            self._advance_frontier(n)
            self._collector.step_done()
        for n in range(end - 1, start - 1, -1):
            model.run_reverse(n, self._markings)
            self.stats.reverse_steps += 1
            self._release(self._work_adjoint.pop(n), unhold=True)
            self.stats.progress("reverse", n)
            self._collector.step_done()
        self._replace_frontier(set())


def _after(model, n: int) -> set:
    return model.restart_keys(n + 1) if n + 1 < model.n_steps else set()


def _largest_norm(values: dict) -> float:
    return max((_norm(v) for v in values.values() if hasattr(v, "dat")), default=0.0)


def _norm(value) -> float:
    with value.dat.vec_ro as x:
        return x.norm()


def _relative_drift(reconstructed: dict, stored: dict, scale: float) -> float:
    """The largest 2-norm difference over the Functions compared, relative.

    Relative to the size of the stored values or of the segment's states (``scale``),
    whichever is larger: a wave still small at a segment's start is not held to its own
    tiny size.
    """
    drift = 0.0
    for key, value in reconstructed.items():
        if key not in stored or not hasattr(value, "dat"):
            continue
        with value.dat.vec_ro as a, stored[key].dat.vec_ro as b:
            difference = a.copy()
            difference.axpy(-1.0, b)
            size = max(b.norm(), scale)
            drift = max(drift, difference.norm() / size if size > 0 else difference.norm())
    return drift


class _AdjointSnapshot:
    """The adjoint values around a segment, to undo the segment's contributions."""

    def __init__(self, model, start: int, end: int):
        variables = {bv for n in range(start, end) for block in model.blocks[n]
                     for bv in (*block.get_dependencies(), *block.get_outputs())}
        self.values = {bv: _copy(bv.adj_value) for bv in variables}

    def restore(self) -> None:
        for bv, value in self.values.items():
            bv.adj_value = _copy(value)


def _copy(value):
    return value.copy(deepcopy=True) if hasattr(value, "dat") else value
