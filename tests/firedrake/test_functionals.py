"""Time functionals (fe_adjoint.functionals) under every schedule, RAM and disk.

Each functional's J, gradient (right after taping, repeated, at two new controls and
back), TLM and Hessian actions equal the same functional written by hand to 1e-10; the
hand-written ones are checked against central finite differences of untaped runs (second
differences of the gradient for Hessians). See :mod:`tests.functionals`.
"""

import functools

import numpy as np
import pytest
from firedrake.adjoint import taylor_test

from fe_adjoint.tape.coarse import StepBlock
from tests.functionals import FUNCTIONALS, N_STEPS, point_misfit, tie, time_max
from tests.helpers import (
    SCHEDULES,
    control_values,
    gradient_at,
    pairing,
    perturbed,
    reference,
    relative_error,
    second_order_reference,
    true_derivative_fd,
)

TOL = 1e-10


def _by_hand(name):
    return functools.partial(FUNCTIONALS[name], by_hand=True)


def _field_max_second_order(values):
    """TLM of the hand-written field maximum, and its Hessian action by second differences
    of its gradient (Firedrake cannot differentiate its interpolation twice)."""
    problem = _by_hand("field_max")
    taped = problem(SCHEDULES["single_memory"](N_STEPS))
    d, h, out = taped.direction, 1e-4, []
    for value in values(taped):
        taped.Jhat(value)
        tlm = float(taped.Jhat.tlm(d))
        assert abs(true_derivative_fd(problem, value, d) - tlm) <= 1e-6 * abs(tlm)
        hessian = (gradient_at(problem, perturbed(value, d, h))
                   - gradient_at(problem, perturbed(value, d, -h))) / (2 * h)
        out.append((tlm, hessian))
    return out


@pytest.fixture(scope="session")
def functional_references():
    """functional_references(name) -> ([(J, dJ)] at the 3 control values, [(tlm, H d)] at 2)."""
    cache = {}

    def get(name):
        if name not in cache:
            def first_two(taped):
                return control_values(taped)[:2]

            second = (_field_max_second_order(first_two) if name == "field_max"
                      else second_order_reference(_by_hand(name), first_two))
            cache[name] = reference(_by_hand(name), control_values), second
        return cache[name]

    return get


def _check_second_order(Jhat, direction, expected, name):
    tlm, hessian = expected
    assert float(Jhat.tlm(direction)) == pytest.approx(tlm, rel=TOL)
    tol = 1e-5 if name == "field_max" else TOL  # there, a second difference
    assert relative_error(Jhat.hessian(direction), hessian) <= tol


# TimeIntegral is TimeSum's block with other weights: a RAM, a disk and a two-level schedule.
CASES = [(name, schedule) for name in FUNCTIONALS for schedule in SCHEDULES
         if name != "time_integral" or schedule in ("revolve", "mixed_disk", "two_level_ram")]
HESSIAN_TAYLOR = ("single_memory", "revolve", "mixed_disk", "multistage_disk")


@pytest.mark.parametrize("name,schedule", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_functional_derivatives_equal_the_hand_written_ones(name, schedule, tmp_path,
                                                            functional_references):
    first, second = functional_references(name)
    taped = FUNCTIONALS[name](SCHEDULES[schedule](N_STEPS), tmp_path)
    Jhat, d = taped.Jhat, taped.direction
    values = control_values(taped)
    assert float(Jhat.functional) == pytest.approx(first[0][0], rel=TOL)
    for _ in range(2):
        assert relative_error(Jhat.derivative(), first[0][1]) <= TOL
    _check_second_order(Jhat, d, second[0], name)
    for i in (1, 2, 0):
        assert float(Jhat(values[i])) == pytest.approx(first[i][0], rel=TOL)
        for _ in range(2):
            assert relative_error(Jhat.derivative(), first[i][1]) <= TOL
    Jhat(values[1])
    _check_second_order(Jhat, d, second[1], name)
    if schedule in HESSIAN_TAYLOR:  # elsewhere J, dJ and H d equal these schedules' ones
        assert taylor_test(Jhat, values[0], d) >= 1.95
        Jhat(values[0])
        dJdm, Hm = pairing(Jhat.derivative(), d), pairing(Jhat.hessian(d), d)
        assert taylor_test(Jhat, values[0], d, dJdm=dJdm, Hm=Hm) >= 2.9


def test_the_maximum_has_one_winner_at_every_control_tested():
    """The hand-written TimeMax (step 2's term alone) is the maximum at every control used."""
    taped = time_max(SCHEDULES["single_memory"](N_STEPS))
    for value in control_values(taped):
        terms = [time_max(control=value, annotate=False, by_hand=True, winner=k)
                 for k in range(N_STEPS)]
        assert int(np.argmax(terms)) == 2
        assert terms[2] - sorted(terms)[-2] > 1e-3 * terms[2]  # well away from a tie


@pytest.mark.parametrize("schedule", ["single_memory", "revolve", "mixed_disk"])
@pytest.mark.parametrize("field", [False, True], ids=["TimeMax", "FieldMax"])
def test_at_a_tie_the_first_winner_takes_the_derivative(field, schedule, tmp_path):
    taped = tie(SCHEDULES[schedule](4), tmp_path, field=field)
    assert float(taped.Jhat.functional) == 1.5**2
    for _ in range(2):
        assert float(taped.Jhat.derivative().dat.data_ro[0]) == pytest.approx(3.0, rel=1e-12)
    assert float(taped.Jhat.tlm(taped.direction)) == pytest.approx(3.0, rel=1e-12)
    assert float(taped.Jhat.hessian(taped.direction).dat.data_ro[0]) == pytest.approx(
        2.0, rel=1e-12)  # d2/dm2 of (m + 1/2)^2
    later = perturbed(taped.m, taped.direction, 1e-3)  # step 3 (2m - 1/2) is ahead now
    taped.Jhat(later)
    expected = 2 * (2 * 1.001 - 0.5) * 2
    assert float(taped.Jhat.derivative().dat.data_ro[0]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("by_hand", [False, True], ids=["PointMisfit", "by_hand"])
def test_an_observation_is_one_operation_whatever_the_number_of_receivers(by_hand):
    """The tape holds one block per step; an observed step has one more operation than an
    unobserved one with PointMisfit, however many receivers (by hand: more)."""
    rng = np.random.default_rng(1)
    added = []
    for receivers in (np.array([(0.5, 0.5)]), 0.05 + 0.9 * rng.random((50, 2))):
        taped = point_misfit(SCHEDULES["revolve"](N_STEPS), receivers=receivers,
                             by_hand=by_hand)
        taped.Jhat.derivative()  # taping ends: the last step is one block too
        blocks = [block for block in taped.Jhat.tape.get_blocks()
                  if isinstance(block, StepBlock)]  # (the direction is interpolated after)
        assert len(blocks) == N_STEPS
        operations = [len(block.operations) for block in blocks]
        added.append(operations[2] - operations[1])  # step 2 observed, step 1 not
    if by_hand:
        assert min(added) >= 3
    else:
        assert added == [1, 1]


def test_the_fwi_demo_lowers_the_misfit_and_plots(tmp_path, capsys):
    import runpy
    import sys
    from pathlib import Path

    from firedrake.adjoint import get_working_tape

    path = Path(__file__).resolve().parents[2] / "demos" / "fwi.py"
    plot = tmp_path / "velocity.png"
    argv = sys.argv
    sys.argv = [str(path), "--cells", "6", "--steps", "20", "--receivers", "5",
                "--iterations", "2", "--snapshots", "3", "--plot", str(plot)]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = argv
    misfits = [float(line.split()[-1]) for line in capsys.readouterr().out.splitlines()
               if line.startswith("evaluation")]
    assert len(misfits) >= 3 and min(misfits) < 0.5 * misfits[0]
    assert plot.stat().st_size > 0
    assert [len(step) for step in get_working_tape().timesteps] == [1] * 20


def _fwi(schedule, tmp_path, by_hand):
    import fe_adjoint
    from demos import fwi
    from tests.helpers import Taped, fresh_tape

    s = fwi.survey(cells=6, steps=20, receivers=5)
    data = fwi.records(s, fwi.true_speed(s.V))
    c = fwi.Function(s.V).interpolate(1.5)
    fresh_tape()
    fe_adjoint.enable_checkpointing(schedule, disk_dir=tmp_path)
    J = fwi.misfit(s, c, data, by_hand=by_hand, steps=fe_adjoint.steps)
    fwi.pause_annotation()
    x, z = fwi.SpatialCoordinate(s.mesh)
    return Taped(fwi.ReducedFunctional(J, fwi.Control(c)), c,
                 fwi.Function(s.V).interpolate(0.2 * x * (1 - x) * z))


@pytest.mark.parametrize("schedule", ["mixed_disk"])
def test_point_misfit_equals_the_fwi_demo_code(schedule, tmp_path):
    """The FWI demo's receivers as Functions, observed by PointMisfit, against its own loop
    (that loop's derivatives are checked against finite differences in test_idioms)."""
    expected = _fwi(SCHEDULES["single_memory"](20), tmp_path, by_hand=True)
    taped = _fwi(SCHEDULES[schedule](20), tmp_path, by_hand=False)
    d = taped.direction
    assert float(taped.Jhat.functional) == pytest.approx(float(expected.Jhat.functional),
                                                         rel=TOL)
    assert relative_error(taped.Jhat.derivative(), expected.Jhat.derivative()) <= TOL
    e = expected.direction  # the same values, on the other run's mesh
    assert float(taped.Jhat.tlm(d)) == pytest.approx(float(expected.Jhat.tlm(e)), rel=TOL)
    assert relative_error(taped.Jhat.hessian(d), expected.Jhat.hessian(e)) <= TOL
