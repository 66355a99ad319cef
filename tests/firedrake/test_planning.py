"""enable_checkpointing("auto"): a planned schedule keeps its budgets and its gradients."""

import os

import pytest
from firedrake.adjoint import taylor_test

import fe_adjoint
from fe_adjoint import AutoSchedule, ConfigurationError, ScheduleError, StepCosts
from tests.helpers import N_STEPS, PROBLEMS, control_values, relative_error

TOL = 1e-12
BUDGETS = {"ram": {"memory": "1.5KiB"}, "disk": {"memory": "600B", "disk": "20KiB"},
           "online": {"memory": "1.5KiB", "disk": "3KiB"}}


def _within_budgets(stats, budget):
    peaks = stats["peak_total_bytes"]
    assert peaks["RAM"] + peaks["WORK"] <= fe_adjoint.planning.parse_bytes(budget["memory"])
    assert peaks["DISK"] <= fe_adjoint.planning.parse_bytes(budget.get("disk", 0))


@pytest.mark.parametrize("level", BUDGETS)
@pytest.mark.parametrize("problem", ["heat", "burgers"])
def test_planned_schedule_keeps_budgets_and_gradients(problem, level, tmp_path, references):
    expected = references(problem)
    budget = BUDGETS[level]
    online = {"expected_steps": N_STEPS} if level == "online" else {}
    schedule = AutoSchedule(None if online else N_STEPS, **online, **budget)
    taped = PROBLEMS[problem](schedule, tmp_path)
    Jhat = taped.Jhat
    for _ in range(2):
        assert relative_error(Jhat.derivative(), expected[0][1]) <= TOL
    stats = fe_adjoint.stats()
    assert stats["schedule"].endswith("(planned)")
    assert stats["forward_steps"] > 2 * N_STEPS or level != "ram"  # it had to recompute
    for value, (J_ref, dJ_ref) in zip(control_values(taped)[1:], expected[1:]):
        assert float(Jhat(value)) == pytest.approx(J_ref, rel=TOL)
        assert relative_error(Jhat.derivative(), dJ_ref) <= TOL
    _within_budgets(fe_adjoint.stats(), budget)
    assert taylor_test(Jhat, control_values(taped)[0], taped.direction) >= 1.95


def test_a_run_shorter_than_the_probe_is_planned_at_its_end(tmp_path, references):
    taped = PROBLEMS["heat"](AutoSchedule(N_STEPS, memory="inf", probe_steps=N_STEPS + 4),
                             tmp_path)
    assert relative_error(taped.Jhat.derivative(), references("heat")[0][1]) <= TOL
    assert fe_adjoint.stats()["schedule"] == "memory() (planned)"


def test_auto_by_name_with_measured_costs_from_a_saved_report(tmp_path, references, capsys):
    from checkpoint_schedules import Revolve

    taped = PROBLEMS["heat"](Revolve(N_STEPS, 2), tmp_path)
    taped.Jhat.derivative()
    fe_adjoint.save_report(tmp_path / "run.json")
    costs = StepCosts.from_report(tmp_path / "run.json")
    measured = fe_adjoint.stats()["costs"]
    assert costs.replay_s == measured["replay_s"] > 0 and costs.adjoint_s > 0
    assert costs.restart_bytes > 0 and costs.adjoint_bytes > 0

    from firedrake.adjoint import Tape, set_working_tape

    set_working_tape(Tape())
    original = fe_adjoint.enable_checkpointing

    def by_name(schedule, **options):  # as a script writes it
        return original("auto", steps=N_STEPS, memory="1.5KiB", costs=tmp_path / "run.json",
                        verbose=True, **options)

    fe_adjoint.enable_checkpointing = by_name
    try:
        taped = PROBLEMS["heat"](Revolve(N_STEPS, 2), tmp_path)
    finally:
        fe_adjoint.enable_checkpointing = original
    assert relative_error(taped.Jhat.derivative(), references("heat")[0][1]) <= TOL
    assert "chosen:" in capsys.readouterr().err


def test_bad_planning_input_is_refused(tmp_path):
    from checkpoint_schedules import Revolve

    with pytest.raises(ConfigurationError, match="planning options are for"):
        fe_adjoint.enable_checkpointing(Revolve(4, 1), memory="1GiB")
    with pytest.raises(ConfigurationError, match="expected_steps"):
        AutoSchedule(None, memory="1GiB")
    with pytest.raises(ConfigurationError, match="cannot read"):
        AutoSchedule(4, memory="lots")
    with pytest.raises(ScheduleError, match="built for 4 steps"):
        PROBLEMS["heat"](AutoSchedule(4, memory="1.5KiB"), tmp_path)
    with pytest.raises(ConfigurationError, match="least that fits"):
        PROBLEMS["heat"](AutoSchedule(N_STEPS, memory="100B"), tmp_path)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("fe_adjoint")]


def test_one_probed_step_is_timed(tmp_path, references):
    auto = AutoSchedule(N_STEPS, memory="1.5KiB", probe_steps=1)
    taped = PROBLEMS["heat"](auto, tmp_path)
    assert relative_error(taped.Jhat.derivative(), references("heat")[0][1]) <= TOL
    assert auto.plan.costs.forward_s > 1e-4 and auto.plan.predicted_s > 0
