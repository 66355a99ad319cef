"""TLM and Hessian actions under every schedule, at the taping point and at new controls."""

import pytest
from firedrake.adjoint import get_working_tape, taylor_to_dict

from fe_adjoint.tape.hooks import session_of
from tests.helpers import (
    N_STEPS,
    PROBLEMS,
    SCHEDULES,
    as_array,
    burgers,
    control_values,
    heat,
    heat_bc_switch,
    heat_null_space,
    reaction_diffusion,
    relative_error,
    uncoarsened,
)

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


PATTERN_PROBLEMS = {"heat": heat, "burgers": burgers, "reaction_diffusion": reaction_diffusion,
                    "heat_bc_switch": heat_bc_switch, "heat_null_space": heat_null_space}


def _second_order(taped):
    """TLM and Hessian actions: just taped, at each control value, then the first again."""
    values = control_values(taped)
    out = []
    for i, value in enumerate([*values, values[0]]):
        if i:
            taped.Jhat(value)
        out.append((float(taped.Jhat.tlm(taped.direction)),
                     as_array(taped.Jhat.hessian(taped.direction)).copy()))
    return out


@pytest.mark.parametrize("schedule", ["single_memory", "revolve", "mixed_disk"])
@pytest.mark.parametrize("problem", PATTERN_PROBLEMS, ids=list(PATTERN_PROBLEMS))
def test_pattern_rules_equal_pyadjoints_block_methods(problem, schedule, tmp_path):
    # Uncoarsened, every block's tangent and second-order adjoint are pyadjoint's own.
    with uncoarsened():
        expected = _second_order(PATTERN_PROBLEMS[problem](SCHEDULES[schedule](N_STEPS),
                                                           tmp_path))
    got = _second_order(PATTERN_PROBLEMS[problem](SCHEDULES[schedule](N_STEPS), tmp_path))
    for (tlm, hessian), (tlm_expected, hessian_expected) in zip(got, expected):
        assert tlm == pytest.approx(tlm_expected, rel=1e-12)
        assert relative_error(hessian, hessian_expected) <= 1e-12
    kinds = {key[0] for key in session_of(get_working_tape()).patterns}
    if problem != "heat_null_space":  # its solves use a null space: pyadjoint's blocks
        assert {"solve-tlm", "solve-hessian", "assemble-tlm", "assemble-hessian"} <= kinds


def test_hessian_after_a_gradient_recomputes_the_tangents(second_order_references):
    # Under store-all a TLM keeps its tangents for the Hessian that follows; a gradient in
    # between clears them, and the Hessian must then run its own tangent forward.
    expected = second_order_references("burgers")
    taped = burgers(SCHEDULES["single_memory"](N_STEPS))
    d = taped.direction
    assert relative_error(taped.Jhat.hessian(d), expected[0][1]) <= TOL
    taped.Jhat.tlm(d)
    taped.Jhat.derivative()
    assert relative_error(taped.Jhat.hessian(d, evaluate_tlm=False), expected[0][1]) <= TOL
    taped.Jhat.tlm(d)
    assert relative_error(taped.Jhat.hessian(d, evaluate_tlm=False), expected[0][1]) <= TOL
