"""hessian_trace: exact collapsed traces, solve counts, Hutchinson estimates, memory, errors.

The trusted reference on the UQ demo's non-linear reaction-diffusion problem
(R = 10 scalar controls) is the sum of R Hessian actions <e_k, H e_k> (store
everything, after re-evaluation), itself checked against central second
differences of J.
"""

import numpy as np
import pytest
from checkpoint_schedules import SingleMemoryStorageSchedule

import fe_adjoint
from demos import uq_reaction_diffusion as uq
from tests.helpers import (
    N_STEPS,
    PROBLEMS,
    SCHEDULES,
    control_values,
    pairing,
    perturbed,
)

TOL = 1e-10
STEPS, CELLS = 2, 4


def _values(controls, shift):
    from firedrake import Function

    return [Function(m.function_space()).assign(float(m.dat.data_ro[0]) + shift * (k % 3 - 1))
            for k, m in enumerate(controls)]


def _hessian_matrix(Jhat, directions):
    return np.array([[float(column[i].dat.data_ro[0]) for i in range(len(directions))]
                     for column in (Jhat.hessian(e) for e in directions)])


@pytest.fixture(scope="module")
def uq_reference():
    """[(control values, H)] at the taping point and a new control; tr H checked by FD."""
    Jhat, controls = uq.build(STEPS, CELLS, SingleMemoryStorageSchedule())
    directions = uq.unit_directions(controls)
    out = []
    for shift in (0.0, 0.4):
        value = _values(controls, shift)
        J0 = Jhat(value)
        H = _hessian_matrix(Jhat, directions)
        assert np.allclose(H, H.T, rtol=1e-8, atol=1e-12 * abs(H).max())
        h = 1e-3
        fd = sum(
            (Jhat([perturbed(v, e, h) for v, e in zip(value, d)]) - 2 * J0
             + Jhat([perturbed(v, e, -h) for v, e in zip(value, d)])) / h**2
            for d in directions
        )
        assert abs(fd - np.trace(H)) <= 1e-5 * abs(np.trace(H)), (fd, np.trace(H))
        out.append((shift, H))
    return out


@pytest.mark.parametrize("schedule", ["revolve", "mixed_disk", "single_memory"])
def test_exact_trace_equals_sum_of_hessian_actions(schedule, tmp_path, uq_reference):
    Jhat, controls = uq.build(STEPS, CELLS, SCHEDULES[schedule](STEPS))
    directions = uq.unit_directions(controls)
    for shift, H in uq_reference * 2:  # each control value twice, after the other
        Jhat(_values(controls, shift))
        trace = fe_adjoint.hessian_trace(Jhat, directions)
        assert trace == pytest.approx(np.trace(H), rel=TOL)
        # a gradient is still right afterwards (the sweep left the schedule's data intact)
        Jhat.derivative()


@pytest.mark.parametrize("problem", PROBLEMS, ids=list(PROBLEMS))
def test_trace_along_one_direction_is_the_hessian_quadratic_form(
        problem, tmp_path, second_order_references):
    expected = second_order_references(problem)
    taped = PROBLEMS[problem](SCHEDULES["revolve"](N_STEPS), tmp_path)
    d = taped.direction
    for i, (value, (_, hessian)) in enumerate(zip(control_values(taped), expected)):
        if i:
            taped.Jhat(value)
        assert fe_adjoint.hessian_trace(taped.Jhat, [d]) == pytest.approx(
            pairing(hessian, d), rel=TOL)


def _event_counts(*names):
    from firedrake.petsc import PETSc

    return np.array([PETSc.Log.Event(name).getPerfInfo()["count"] for name in names])


def test_one_factorisation_and_r_plus_one_solves_per_step():
    from firedrake.petsc import PETSc

    PETSc.Log.begin()
    n_steps = 3
    Jhat, controls = uq.build(n_steps, CELLS, SingleMemoryStorageSchedule())
    directions = uq.unit_directions(controls)
    R = len(directions)
    events = ("KSPSolve", "PCSetUp")

    traces = []
    for _ in range(2):
        solves_before = dict(fe_adjoint.stats()["linear_solves"])
        before = _event_counts(*events)
        fe_adjoint.hessian_trace(Jhat, directions)
        traces.append(_event_counts(*events) - before)
        solves = fe_adjoint.stats()["linear_solves"]
        assert solves["tangent"] - solves_before["tangent"] == R * n_steps
        assert solves["second_order"] - solves_before["second_order"] == n_steps
    before = _event_counts(*events)
    Jhat(controls)  # the forward alone, at the same control: Newton's solves and factorisations
    forward = _event_counts(*events) - before
    assert forward[0] > 0

    (first_solves, first_setups), (again_solves, again_setups) = traces - forward
    assert first_solves == again_solves == (R + 1) * n_steps
    assert first_setups == n_steps  # one factorisation per step serves its R + 1 solves
    # a step whose Jacobian is the same as at the last call keeps its factorisation
    assert again_setups <= n_steps


def test_hutchinson_standard_error_falls_like_inverse_square_root(uq_reference):
    shift, H = uq_reference[0]
    Jhat, controls = uq.build(STEPS, CELLS, SingleMemoryStorageSchedule())
    Jhat(_values(controls, shift))
    # Var(z^T H z) for Rademacher z: 2 * sum of the squared off-diagonal entries
    sigma = np.sqrt(2 * (np.sum(H**2) - np.sum(np.diag(H) ** 2)))
    rms = {}
    for samples in (4, 16, 64):
        estimates = [fe_adjoint.hessian_trace(Jhat, samples=samples, seed=seed)
                     for seed in range(5)]
        for estimate in estimates:
            assert estimate.samples == samples
            assert abs(estimate.value - np.trace(H)) <= 5 * sigma / np.sqrt(samples)
        rms[samples] = np.sqrt(np.mean([e.std_error**2 for e in estimates]))
        assert 0.5 <= rms[samples] * np.sqrt(samples) / sigma <= 1.5, (samples, rms, sigma)
    assert 1.4 <= rms[4] / rms[16] <= 2.8
    assert 1.4 <= rms[16] / rms[64] <= 2.8


def test_covariance_factor_scales_the_trace(uq_reference):
    shift, H = uq_reference[0]
    Jhat, controls = uq.build(STEPS, CELLS, SingleMemoryStorageSchedule())
    Jhat(_values(controls, shift))

    def scaled(z):  # L = 0.5 I, so tr(C H) = tr(H) / 4 exactly for every Rademacher sample
        return [0.5 * float(zk.dat.data_ro[0]) * e[k] for k, (zk, e) in
                enumerate(zip(z, uq.unit_directions(controls)))]

    plain = fe_adjoint.hessian_trace(Jhat, samples=8, seed=3)
    weighted = fe_adjoint.hessian_trace(Jhat, samples=8, seed=3, covariance_factor=scaled)
    assert weighted.value == pytest.approx(plain.value / 4, rel=1e-10)
    assert weighted.std_error == pytest.approx(plain.std_error / 4, rel=1e-10)


def test_jets_held_do_not_grow_with_the_number_of_steps(tmp_path):
    peaks, patterns = [], []
    for n_steps in (2, 8):
        taped = PROBLEMS["reaction_diffusion"](SingleMemoryStorageSchedule(), tmp_path,
                                               n_steps=n_steps)
        fe_adjoint.hessian_trace(taped.Jhat, [taped.direction, taped.direction])
        peaks.append(fe_adjoint.stats()["trace_peak_jets"])
        patterns.append(len(fe_adjoint.tape.get_session().patterns))
    assert peaks[0] == peaks[1]
    assert patterns[0] == patterns[1]  # one derivation per pattern, not per step


def test_bad_arguments_are_refused(tmp_path):
    taped = PROBLEMS["recurrence"](SingleMemoryStorageSchedule(), tmp_path)
    with pytest.raises(fe_adjoint.ConfigurationError, match="either directions"):
        fe_adjoint.hessian_trace(taped.Jhat)
    with pytest.raises(fe_adjoint.ConfigurationError, match="multiple of batch_size"):
        fe_adjoint.hessian_trace(taped.Jhat, samples=6, batch_size=4)
    with pytest.raises(fe_adjoint.ConfigurationError, match="unknown sampler"):
        fe_adjoint.hessian_trace(taped.Jhat, samples=4, sampler="uniform")


def test_a_constant_set_from_a_control_is_refused():
    from firedrake import Constant
    from firedrake.adjoint import AdjFloat, Control, ReducedFunctional, pause_annotation

    from tests.helpers import fresh_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(SingleMemoryStorageSchedule())
    m = AdjFloat(2.0)
    c = Constant(0.0)
    J = AdjFloat(0.0)
    for _ in fe_adjoint.steps(1):
        c.assign(m)
        J = J + m * m
    pause_annotation()
    with pytest.raises(fe_adjoint.ConfigurationError, match="'R' space"):
        fe_adjoint.hessian_trace(ReducedFunctional(J, Control(m)), [AdjFloat(1.0)])
