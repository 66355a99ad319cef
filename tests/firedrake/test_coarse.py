"""Coarse step blocks: one tape block per step, adjoints from forms derived once per pattern.

The uncoarsened tape (pyadjoint's blocks and adjoints, ``coarsen=False``) is the
reference; on the problem whose boundary condition moves half-way the gradient
is also checked against central finite differences of untaped runs.
"""

from contextlib import nullcontext

import pytest
from firedrake.adjoint import get_working_tape, taylor_test

import fe_adjoint
from fe_adjoint.tape.coarse import StepBlock
from tests.helpers import (
    N_STEPS,
    SCHEDULES,
    as_array,
    burgers,
    control_values,
    heat,
    heat_bc_switch,
    heat_null_space,
    pairing,
    relative_error,
    true_derivative_fd,
    uncoarsened,
)

TOL = 1e-12
PROBLEMS = {"heat": heat, "burgers": burgers, "heat_bc_switch": heat_bc_switch}


def _gradients(taped, just_taped=True):
    """Gradients at the problem's control values (the first without re-evaluation if
    ``just_taped``)."""
    out = []
    for i, value in enumerate(control_values(taped)):
        if i or not just_taped:
            taped.Jhat(value)
        out.append(as_array(taped.Jhat.derivative()).copy())
    return out


@pytest.mark.parametrize("schedule", ["single_memory", "revolve", "mixed_ram"])
@pytest.mark.parametrize("problem", PROBLEMS, ids=list(PROBLEMS))
def test_coarse_gradients_equal_uncoarsened(problem, schedule, tmp_path):
    with uncoarsened():
        fine = PROBLEMS[problem](SCHEDULES[schedule](N_STEPS), tmp_path)
    assert all(len(step) > 1 for step in get_working_tape().timesteps)
    expected = _gradients(fine)

    coarse = PROBLEMS[problem](SCHEDULES[schedule](N_STEPS), tmp_path)
    for repeat in range(2):  # each control value twice, after the others
        for got, want in zip(_gradients(coarse, just_taped=not repeat), expected):
            assert relative_error(got, want) <= TOL
    # the last step is closed when the tape is first evaluated; what was taped after the
    # functional (the direction's interpolation) stays outside it
    steps = get_working_tape().timesteps
    assert [len(step) for step in steps[:-1]] == [1] * (N_STEPS - 1)
    assert type(steps[-1][0]) is StepBlock and len(steps[-1][0].operations) > 1
    assert [type(block).__name__ for block in steps[-1][1:]] == ["AssembleBlock"]
    assert taylor_test(coarse.Jhat, control_values(coarse)[0], coarse.direction) >= 1.95


def test_moving_boundary_gradient_equals_finite_differences(tmp_path):
    taped = heat_bc_switch(SCHEDULES["revolve"](N_STEPS), tmp_path)
    for value in control_values(taped):
        taped.Jhat(value)
        exact = pairing(taped.Jhat.derivative(), taped.direction)
        fd = true_derivative_fd(heat_bc_switch, value, taped.direction)
        assert abs(fd - exact) <= 1e-6 * abs(exact)


def _pc_setups():
    from firedrake.petsc import PETSc

    return PETSc.Log.Event("PCSetUp").getPerfInfo()["count"]


@pytest.mark.parametrize("problem, operators", [("heat", 1), ("heat_bc_switch", 2)])
@pytest.mark.parametrize("schedule", ["single_memory", "revolve"])
def test_each_distinct_operator_is_factorised_once(problem, operators, schedule, tmp_path):
    # The heat operator is self-adjoint and reads only Constants: one factorisation serves
    # every replayed forward step and every adjoint step, and outlives the gradient.
    from firedrake.petsc import PETSc

    PETSc.Log.begin()
    taped = PROBLEMS[problem](SCHEDULES[schedule](N_STEPS), tmp_path)
    before = _pc_setups()
    taped.Jhat.derivative()
    assert _pc_setups() - before == operators  # not one per step
    taped.Jhat(control_values(taped)[1])
    before = _pc_setups()
    taped.Jhat.derivative()
    assert _pc_setups() - before == 0


def test_forms_are_derived_once_per_pattern(tmp_path):
    sizes = []
    for n_steps in (4, 8):
        taped = burgers(SCHEDULES["revolve"](n_steps), tmp_path, n_steps=n_steps)
        taped.Jhat.derivative()
        sizes.append(len(fe_adjoint.tape.get_session().patterns))
    assert sizes[0] == sizes[1] > 0


@pytest.mark.parametrize("demo", ["heat", "burgers"])
def test_demos_tape_one_block_per_step(demo):
    import runpy
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "demos" / f"{demo}.py"
    argv = sys.argv
    sys.argv = [str(path), "--steps", "6", "--cells", "8"]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = argv
    assert [len(step) for step in get_working_tape().timesteps] == [1] * 6
    assert fe_adjoint.stats()["reverse_steps"] >= 6


def test_solves_with_a_null_space_keep_pyadjoint_adjoints(tmp_path):
    # fe_adjoint's own solves would ignore the null space: this solve must use pyadjoint's
    gradients = []
    for options in (uncoarsened(), nullcontext()):
        with options:
            taped = heat_null_space(SCHEDULES["revolve"](N_STEPS), tmp_path)
        taped.Jhat(taped.m)
        gradients.append(as_array(taped.Jhat.derivative()).copy())
    assert relative_error(gradients[1], gradients[0]) <= 1e-10
