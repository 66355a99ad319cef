"""Hessian traces in one forward sweep: exact sums ``sum_r <v_r, H v_r>`` and Hutchinson estimates.

Both run :mod:`fe_adjoint.collapsed` propagation through a forward sweep of the
tape from its start: no schedule, no checkpoints, no adjoint, and memory that
does not grow with the number of steps (a step's jets are freed once no later
step reads them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from pyadjoint.tape import stop_annotating

from ..errors import ConfigurationError
from ..tape.hooks import session_of
from .collapsed import CollapsedPropagator


class TraceEstimate(NamedTuple):
    """A Hutchinson estimate of ``tr(C H)`` and its standard error (batch means)."""

    value: float
    std_error: float
    samples: int


def _rademacher(rng, size):
    return rng.choice((-1.0, 1.0), size=size)


def _gaussian(rng, size):
    return rng.standard_normal(size)


SAMPLERS: dict[str, Callable] = {"rademacher": _rademacher, "gaussian": _gaussian}


def hessian_trace(
    Jhat,
    directions: Sequence | None = None,
    *,
    samples: int | None = None,
    sampler: str = "rademacher",
    covariance_factor: Callable[[list], list] | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
):
    """The trace of the Hessian of ``Jhat`` along directions, at the current control value.

    Exact mode (``directions``): returns ``sum_r <v_r, H v_r>`` as a float, from one
    forward sweep with R first-order tangents and ONE collapsed second-order tangent:
    per solve step, R + 1 linear solves with the step's Jacobian, factorised once.

    Hutchinson mode (``samples=S``): returns a :class:`TraceEstimate` of ``tr(C H)``
    (``C`` the identity, or ``L L^T`` for ``covariance_factor=L``) from ``S`` random
    directions ``z = L xi``, ``xi`` Rademacher or Gaussian, propagated ``batch_size`` at
    a time; the standard error comes from the batch means and falls like ``S^-1/2``.

    Parameters
    ----------
    Jhat
        A ``ReducedFunctional`` whose tape has fe_adjoint checkpointing enabled.
    directions
        R directions; each a control value (one control) or a list of them (several).
    samples
        The number of Hutchinson samples (instead of ``directions``).
    sampler
        ``"rademacher"`` or ``"gaussian"``.
    covariance_factor
        ``L``: maps a list of control values (one sample) to a list of control values.
    batch_size
        Samples propagated together (default: ``max(1, samples // 16)``, so at least
        16 batch means from 16 samples on).
    seed
        Seed of the random generator (the same on every MPI rank).
    """
    if (directions is None) == (samples is None):
        raise ConfigurationError("pass either directions (exact trace) or samples= (Hutchinson)")
    if directions is not None:
        return _collapsed_trace(Jhat, [_as_list(Jhat, d) for d in directions])
    return _hutchinson(Jhat, samples, sampler, covariance_factor, batch_size, seed)


def _as_list(Jhat, direction) -> list:
    if len(Jhat.controls) == 1 and not isinstance(direction, (list, tuple)):
        return [direction]
    if len(direction) != len(Jhat.controls):
        raise ConfigurationError(
            f"a direction has {len(direction)} entries but Jhat has {len(Jhat.controls)} "
            "controls; give one value per control"
        )
    return list(direction)


def _collapsed_trace(Jhat, directions: list[list]) -> float:
    if not directions:
        raise ConfigurationError("hessian_trace needs at least one direction")
    session = session_of(Jhat.tape)
    sweep = _session_sweep(session) if session is not None else _plain_sweep(Jhat.tape)
    index, patterns, run = sweep
    propagator = CollapsedPropagator(index, len(directions), patterns)
    for i, control in enumerate(Jhat.controls):
        propagator.seed(control.block_variable, [d[i] for d in directions])
    functional = Jhat.functional.block_variable
    propagator.keep(functional)
    with stop_annotating():
        run(propagator, [control.block_variable for control in Jhat.controls])
    if session is not None:
        session.driver.stats.count_trace(propagator.solves, propagator.peak_jets)
    jet = propagator.jets.get(functional)
    second = 0.0 if jet is None or jet.second is None else float(jet.second)
    return getattr(Jhat, "scale", 1.0) * second


def _session_sweep(session):
    """A forward sweep of an fe_adjoint tape, through its session."""
    session.end_taping()

    def run(observer, controls):
        with session.begin_pass(controls), session.model.observed(observer):
            session.driver.sweep()

    return session.model.index, session.patterns, run


def _plain_sweep(tape):
    """A forward sweep of a plain firedrake.adjoint tape (no checkpointing enabled).

    Its blocks are replayed as pyadjoint would (reading what pyadjoint records), each
    step of ``tape.timesteps`` (or the whole tape) as one step.
    """
    from ..checkpointing.step_model import PyadjointStepModel
    from ..checkpointing.values import FiredrakeValueCodec
    from ..steps.patterns import PatternCache
    from ..tape.reads import ReadTracker

    reads = ReadTracker()
    model = PyadjointStepModel(tape, FiredrakeValueCodec(), reads)
    steps = [list(step) for step in tape.timesteps if len(step)] or [list(tape.get_blocks())]
    for n, blocks in enumerate(steps):
        for block in blocks:
            reads.plan_dependencies(block)
        model.index_step(n, blocks)

    def run(observer, controls):
        model.adopt_controls(controls, given=True)
        with model.observed(observer):
            for n in range(len(steps)):
                model.run_forward(n)

    return model.index, PatternCache(), run


def _hutchinson(Jhat, samples, sampler, covariance_factor, batch_size, seed) -> TraceEstimate:
    if sampler not in SAMPLERS:
        raise ConfigurationError(f"unknown sampler {sampler!r}; use one of {sorted(SAMPLERS)}")
    batch_size = batch_size or max(1, samples // 16)
    if samples % batch_size or samples // batch_size < 2:
        raise ConfigurationError(
            f"samples={samples} must be a multiple of batch_size={batch_size} with at least "
            "two batches (the standard error comes from the batch means)"
        )
    rng = np.random.default_rng(seed)
    draw = SAMPLERS[sampler]
    means = []
    for _ in range(samples // batch_size):
        batch = [_random_direction(Jhat, draw, rng) for _ in range(batch_size)]
        if covariance_factor is not None:
            batch = [_as_list(Jhat, covariance_factor(z)) for z in batch]
        means.append(_collapsed_trace(Jhat, batch) / batch_size)
    means = np.array(means)
    return TraceEstimate(float(means.mean()), float(means.std(ddof=1) / math.sqrt(len(means))),
                         samples)


def _random_direction(Jhat, draw, rng) -> list:
    return [_random_like(control.control, draw, rng) for control in Jhat.controls]


def _random_like(value, draw, rng) -> Any:
    if not hasattr(value, "dat"):
        return type(value)(float(draw(rng, 1)[0]))
    out = value.copy(deepcopy=True)
    with out.dat.vec_wo as vec:
        entries = draw(rng, vec.getSize())  # the same global draw on every rank
        start, end = vec.getOwnershipRange()
        vec.setArray(entries[start:end])
    return out
