"""The reversible schedule: leapfrog steps run backwards from an anchor every K steps.

References: fe_adjoint storing everything, itself checked here against central finite
differences of untaped runs.
"""

import re
from functools import lru_cache

import numpy as np
import pytest
from checkpoint_schedules import SingleMemoryStorageSchedule, StorageType
from firedrake.adjoint import taylor_test

import fe_adjoint
from fe_adjoint import ConfigurationError, ReversibleSchedule
from tests.helpers import (
    control_values,
    heat,
    pairing,
    perturbed,
    relative_error,
    true_derivative_fd,
)
from tests.waves import leapfrog, verlet

N = 1000


@lru_cache(maxsize=None)
def _store_all(n_steps=N, damping=0.0, clamped=False, problem=leapfrog):
    """Store-all gradients at the three control values, validated by finite differences."""
    options = dict(n_steps=n_steps)
    if problem is leapfrog:
        options.update(damping=damping, clamped=clamped)
    taped = problem(SingleMemoryStorageSchedule(), **options)
    values = control_values(taped)
    gradients = []
    for value in values:
        taped.Jhat(value)
        gradients.append(taped.Jhat.derivative().dat.data_ro.copy())
    fd = true_derivative_fd(lambda **kw: problem(**options, **kw), values[0], taped.direction)
    assert pairing(gradients[0], taped.direction) == pytest.approx(fd, rel=1e-6)
    return values, gradients


def _on(m, value):
    """``value`` (same construction, another mesh object) as a Function of ``m``'s space."""
    out = m.copy(deepcopy=True)
    out.dat.data[:] = value.dat.data_ro
    return out


@pytest.mark.parametrize("every, storage", [(10, StorageType.RAM), (100, StorageType.DISK)])
def test_reversible_gradients_equal_store_all(every, storage, tmp_path):
    values, expected = _store_all()
    taped = leapfrog(ReversibleSchedule(N, every, storage), tmp_path)
    for _ in range(2):  # right after taping, then repeated
        assert relative_error(taped.Jhat.derivative(), expected[0]) <= 1e-10
    assert fe_adjoint.stats()["forward_steps"] == N + 2  # the taping, and step 0 per adjoint
    # Away from the taping point the gradient amplifies the states' round-off more: with
    # K = 100 (drift ~3e-13) it is 1.7e-10 off at the second control value.
    tolerance = 1e-10 if every <= 10 else 1e-9
    for value, gradient in zip([*values[1:], values[0]], [*expected[1:], expected[0]]):
        taped.Jhat(_on(taped.m, value))
        assert relative_error(taped.Jhat.derivative(), gradient) <= tolerance
    info = fe_adjoint.stats()["reversible"]
    assert info["stored_states"] <= N / every + 2
    assert max(info["drift"]) <= 1e-10 and info["fallback_segments"] == 0
    assert info["inverse_steps"] == 5 * (N - 1)  # each adjoint: one inverse step per step
    assert fe_adjoint.stats()["forward_steps"] == 4 * N + 5  # three evaluations more
    if every == 10:
        assert taylor_test(taped.Jhat, _on(taped.m, values[0]), taped.direction) >= 1.95


def test_tangent_linear_and_hessian_under_the_reversible_schedule():
    n = 200
    reference = leapfrog(SingleMemoryStorageSchedule(), n_steps=n)
    taped = leapfrog(ReversibleSchedule(n, 20), n_steps=n)
    d, d_ref = taped.direction, reference.direction
    assert float(taped.Jhat.tlm(d)) == pytest.approx(float(reference.Jhat.tlm(d_ref)),
                                                     rel=1e-10)
    expected = reference.Jhat.hessian(d_ref).dat.data_ro.copy()
    assert relative_error(taped.Jhat.hessian(d), expected) <= 1e-10
    h = 1e-3  # central second differences: store-all gradients at m +- h d
    reference.Jhat(perturbed(reference.m, d_ref, h))
    plus = reference.Jhat.derivative().dat.data_ro.copy()
    reference.Jhat(perturbed(reference.m, d_ref, -h))
    minus = reference.Jhat.derivative().dat.data_ro.copy()
    assert relative_error(expected, (plus - minus) / (2 * h)) <= 1e-5
    gradient = taped.Jhat.derivative()  # a gradient after the Hessian pass
    reference.Jhat(reference.m)
    assert relative_error(gradient, reference.Jhat.derivative()) <= 1e-10


def test_a_segment_that_drifts_is_recomputed_from_its_anchor():
    """Strong damping forwards is strong growth backwards: round-off grows past tolerance."""
    n = 400
    values, expected = _store_all(n, damping=200.0)
    taped = leapfrog(ReversibleSchedule(n, 200), n_steps=n, damping=200.0)
    with pytest.warns(RuntimeWarning, match="drifted by"):
        gradient = taped.Jhat.derivative()
    info = fe_adjoint.stats()["reversible"]
    assert info["fallback_segments"] >= 1 and max(info["drift"]) > 1e-10
    assert relative_error(gradient, expected[0]) <= 1e-10


def test_a_step_that_cannot_run_backwards_is_refused():
    """Implicit heat steps (a consistent mass matrix, Dirichlet conditions)."""
    from tests.helpers import N_STEPS

    taped = heat(ReversibleSchedule(N_STEPS, 2))
    with pytest.raises(ConfigurationError, match="cannot be run backwards"):
        taped.Jhat.derivative()


@pytest.mark.parametrize("storage", [StorageType.RAM, StorageType.DISK])
def test_a_declared_inverse_runs_a_clamped_wave_backwards(storage, tmp_path):
    """Dirichlet conditions: refused as derived, right with the user's DeclaredInverse."""
    n, every = 200, 20
    values, expected = _store_all(n, clamped=True)
    with pytest.raises(ConfigurationError, match="Dirichlet.*DeclaredInverse"):
        leapfrog(ReversibleSchedule(n, every), n_steps=n, clamped=True).Jhat.derivative()
    taped = leapfrog(ReversibleSchedule(n, every, storage), tmp_path, n_steps=n,
                     clamped=True, declare=True)
    for _ in range(2):  # right after taping, then repeated
        assert relative_error(taped.Jhat.derivative(), expected[0]) <= 1e-10
    for value, gradient in zip([*values[1:], values[0]], [*expected[1:], expected[0]]):
        taped.Jhat(_on(taped.m, value))  # the inverse reads the control value of each run
        assert relative_error(taped.Jhat.derivative(), gradient) <= 1e-10
    info = fe_adjoint.stats()["reversible"]
    assert info["stored_states"] <= n / every + 2 and info["side_bytes"] == 0
    assert max(info["drift"]) <= 1e-12 and info["fallback_segments"] == 0
    assert info["inverse_steps"] == 5 * (n - 1)  # five adjoints, one inverse step per step
    assert taylor_test(taped.Jhat, _on(taped.m, values[0]), taped.direction) >= 1.95


def test_velocity_verlet_runs_backwards_as_derived():
    """Two solves and ``u.assign(u + dt * w_half)`` per step, as a script writes them."""
    n, every = 200, 20
    values, expected = _store_all(n, problem=verlet)
    taped = verlet(ReversibleSchedule(n, every), n_steps=n)
    assert relative_error(taped.Jhat.derivative(), expected[0]) <= 1e-10
    for value, gradient in zip([*values[1:], values[0]], [*expected[1:], expected[0]]):
        taped.Jhat(_on(taped.m, value))
        assert relative_error(taped.Jhat.derivative(), gradient) <= 1e-10
    info = fe_adjoint.stats()["reversible"]
    assert info["fallback_segments"] == 0 and max(info["drift"]) <= 1e-12
    assert info["stored_states"] <= n / every + 2
    assert taylor_test(taped.Jhat, _on(taped.m, values[0]), taped.direction) >= 1.95


def test_a_wrong_declared_inverse_is_caught_by_the_drift_check():
    n = 200
    _, expected = _store_all(n, clamped=True)
    taped = leapfrog(ReversibleSchedule(n, 20), n_steps=n, clamped=True, declare="wrong")
    with pytest.warns(RuntimeWarning, match="drifted by"):
        gradient = taped.Jhat.derivative()
    assert fe_adjoint.stats()["reversible"]["fallback_segments"] == 10  # all but step 0's
    assert relative_error(gradient, expected[0]) <= 1e-10


def test_a_declared_inverse_names_what_it_cannot_use():
    from firedrake import Constant, Function, FunctionSpace, UnitIntervalMesh

    u = Function(FunctionSpace(UnitIntervalMesh(2), "CG", 1))
    with pytest.raises(ConfigurationError, match="state Functions"):
        fe_adjoint.DeclaredInverse((), print)
    with pytest.raises(ConfigurationError, match="backwards"):
        fe_adjoint.DeclaredInverse((u,), None)
    with pytest.raises(ConfigurationError, match="takes a DeclaredInverse"):
        ReversibleSchedule(10, 5, inverse=print)
    n = 40
    schedule = ReversibleSchedule(n, 10)
    taped = leapfrog(schedule, n_steps=n, clamped=True, declare=True)
    unread = Constant(2.0)
    schedule.inverse = fe_adjoint.DeclaredInverse(
        schedule.inverse.states, schedule.inverse.backwards, reads=(unread,))
    with pytest.raises(ConfigurationError, match=re.escape(f"{unread} is not read by time")):
        taped.Jhat.derivative()


def test_the_fwi_misfit_under_the_reversible_schedule():
    """The FWI demo's own loop with PointMisfit: functionals over time compose."""
    from firedrake.adjoint import Control, ReducedFunctional, pause_annotation

    from demos import fwi
    from tests.helpers import fresh_tape

    s = fwi.survey(cells=6, steps=100, receivers=5)
    data = fwi.records(s, fwi.true_speed(s.V))
    gradients = []
    for schedule in (SingleMemoryStorageSchedule(), ReversibleSchedule(100, 25)):
        fresh_tape()
        fe_adjoint.enable_checkpointing(schedule)
        c = fwi.Function(s.V).interpolate(1.5)
        J = fwi.misfit(s, c, data, steps=fe_adjoint.steps)
        pause_annotation()
        gradients.append(ReducedFunctional(J, Control(c)).derivative().dat.data_ro.copy())
    assert relative_error(gradients[1], gradients[0]) <= 1e-10
    assert np.linalg.norm(gradients[0]) > 0


def test_the_reversible_demo_runs():
    from demos import wave_reversible

    difference, info = wave_reversible.main(["--cells", "6", "--steps", "60", "--every", "20"])
    assert difference <= 1e-10 and info["fallback_segments"] == 0
    assert len(info["drift"]) == 3


def _fwi_gradients(s, data, schedule, speeds):
    """Gradients of the FWI misfit taped at ``speeds[0]``, then at each speed in turn.

    Returns them and the ReducedFunctional.
    """
    from firedrake.adjoint import Control, ReducedFunctional, pause_annotation

    from demos import fwi
    from tests.helpers import fresh_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(schedule)
    c = fwi.Function(s.V).interpolate(speeds[0])
    J = fwi.misfit(s, c, data, steps=fe_adjoint.steps)
    pause_annotation()
    Jhat = ReducedFunctional(J, Control(c))
    gradients = [Jhat.derivative().dat.data_ro.copy()]
    for speed in speeds:
        Jhat(fwi.Function(s.V).interpolate(speed))
        gradients.append(Jhat.derivative().dat.data_ro.copy())
    return gradients, Jhat


def test_an_absorbing_boundary_is_side_data(monkeypatch):
    """The FWI demo's absorbing term makes its boundary rows unstable backwards.

    Those rows of the overwritten state are stored per step (side data); the other rows
    are run backwards. Without side data, the same run drifts (half its segments
    recomputed, drift ~2e-9).
    """
    import warnings

    from firedrake import DirichletBC

    from demos import fwi
    from fe_adjoint.reversible import solve_inverse

    n, every = 300, 30
    s = fwi.survey(cells=30, steps=n, receivers=10)
    data = fwi.records(s, fwi.true_speed(s.V))
    speeds = [1.5, 1.6, 1.5]
    expected, _ = _fwi_gradients(s, data, SingleMemoryStorageSchedule(), speeds)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        gradients, Jhat = _fwi_gradients(s, data, ReversibleSchedule(n, every), speeds)
        for gradient, reference in zip(gradients, expected):
            assert relative_error(gradient, reference) <= 1e-10
        info = fe_adjoint.stats()["reversible"]
        direction = fwi.Function(s.V).interpolate(0.1)
        assert taylor_test(Jhat, fwi.Function(s.V).interpolate(1.5), direction) >= 1.95
    assert info["fallback_segments"] == 0 and max(info["drift"]) <= 1e-12
    boundary = DirichletBC(s.V, 0.0, "on_boundary").nodes.size
    assert info["side_bytes"] == n * boundary * 8  # one boundary layer per step
    assert info["stored_states"] <= n / every + 2

    monkeypatch.setattr(solve_inverse, "SIDE_FRACTION", 0.0)
    with pytest.warns(RuntimeWarning, match="drifted by"):
        gradients, _ = _fwi_gradients(s, data, ReversibleSchedule(n, every), speeds[:1])
    assert fe_adjoint.stats()["reversible"]["fallback_segments"] >= 1
    assert relative_error(gradients[0], expected[0]) <= 1e-10
