"""Gradients under every schedule, every problem: right after taping, repeated, at new controls."""

import pytest
from firedrake.adjoint import taylor_test

from tests.helpers import N_STEPS, PROBLEMS, SCHEDULES, control_values, relative_error

TOL = 1e-12


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
@pytest.mark.parametrize("problem", PROBLEMS, ids=list(PROBLEMS))
def test_gradient_matches_reference(problem, schedule, tmp_path, references):
    expected = references(problem)
    taped = PROBLEMS[problem](SCHEDULES[schedule](N_STEPS), tmp_path)
    Jhat = taped.Jhat
    values = control_values(taped)

    for _ in range(2):  # right after taping, then again without a new forward
        assert relative_error(Jhat.derivative(), expected[0][1]) <= TOL
    for value, (J_ref, dJ_ref) in zip(values[1:], expected[1:]):
        assert float(Jhat(value)) == pytest.approx(J_ref, rel=TOL)
        for _ in range(2):
            assert relative_error(Jhat.derivative(), dJ_ref) <= TOL
    assert taylor_test(Jhat, values[0], taped.direction) >= 1.95
