"""TLM and Hessian actions under every schedule, at the taping point and at new controls."""

import pytest
from firedrake.adjoint import taylor_to_dict

from tests.helpers import N_STEPS, PROBLEMS, SCHEDULES, as_array, control_values, relative_error

TOL = 1e-10


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
@pytest.mark.parametrize("problem", PROBLEMS, ids=list(PROBLEMS))
def test_tlm_and_hessian_match_reference(problem, schedule, tmp_path, second_order_references):
    expected = second_order_references(problem)
    taped = PROBLEMS[problem](SCHEDULES[schedule](N_STEPS), tmp_path)
    d = taped.direction
    for i, (value, (tlm, hessian)) in enumerate(zip(control_values(taped), expected)):
        if i:
            taped.Jhat(value)
        assert float(taped.Jhat.tlm(d)) == pytest.approx(tlm, rel=TOL)
        assert relative_error(taped.Jhat.hessian(d), hessian) <= TOL
        # the gradient is still right after second-order work
        taped.Jhat.derivative()


@pytest.mark.parametrize("problem", ["burgers", "reaction_diffusion", "recurrence"])
def test_taylor_test_with_hessian_converges_at_third_order(problem, tmp_path):
    taped = PROBLEMS[problem](SCHEDULES["revolve"](N_STEPS), tmp_path)
    rates = taylor_to_dict(taped.Jhat, control_values(taped)[0], taped.direction)
    assert min(rates["R2"]["Rate"]) >= 2.9


def test_taylor_remainder_with_hessian_vanishes_on_the_quadratic_heat_functional(tmp_path):
    # J is exactly quadratic in the initial condition: the second-order remainder is round-off.
    taped = PROBLEMS["heat"](SCHEDULES["revolve"](N_STEPS), tmp_path)
    J = float(taped.Jhat(taped.m))
    rates = taylor_to_dict(taped.Jhat, control_values(taped)[0], taped.direction)
    assert max(rates["R1"]["Residual"]) > 1e-6 * J  # the test can fail: R1 is not round-off
    assert max(rates["R2"]["Residual"]) <= 1e-11 * J


@pytest.mark.parametrize("problem", ["heat", "burgers", "recurrence"])
def test_reference_equals_plain_firedrake_adjoint(problem, second_order_references):
    expected = second_order_references(problem)
    taped = PROBLEMS[problem](None)
    for value, (tlm, hessian) in zip(control_values(taped), expected):
        taped.Jhat(value)
        taped.Jhat.derivative()  # plain pyadjoint's Hessian needs the adjoint first
        assert float(taped.Jhat.tlm(taped.direction)) == pytest.approx(tlm, rel=1e-12)
        assert relative_error(as_array(taped.Jhat.hessian(taped.direction)), hessian) <= 1e-12
