"""Step counts, schedule misuse and missing data on real pyadjoint tapes."""

import pytest
from checkpoint_schedules import MixedCheckpointSchedule, Revolve, StorageType

import fe_adjoint
from tests.helpers import SCHEDULES, dry_run_forward_steps, fresh_tape, heat, recurrence


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
def test_forward_steps_equal_the_schedules_dry_run(schedule, tmp_path):
    taped = recurrence(SCHEDULES[schedule](8), tmp_path, n_steps=8)
    taped.Jhat.derivative()
    counts = fe_adjoint.stats()
    assert counts["forward_steps"] == dry_run_forward_steps(SCHEDULES[schedule](8), 8)
    assert counts["reverse_steps"] == 8


def test_mixed_recomputes_fewer_steps_than_revolve(tmp_path):
    counts = {}
    for name, schedule in {"mixed": MixedCheckpointSchedule(100, 10, storage=StorageType.RAM),
                           "revolve": Revolve(100, 10)}.items():
        taped = recurrence(schedule, tmp_path, n_steps=100)
        taped.Jhat.derivative()
        counts[name] = fe_adjoint.stats()["forward_steps"]
    assert counts == {"mixed": 237, "revolve": 322}


def test_steps_must_match_the_schedule():
    fresh_tape()
    fe_adjoint.enable_checkpointing(Revolve(6, 2))
    with pytest.raises(fe_adjoint.ScheduleError, match="built for 6 steps"):
        fe_adjoint.steps(7)


def test_a_short_run_is_named_at_the_derivative():
    from firedrake.adjoint import AdjFloat, Control, ReducedFunctional, get_working_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(Revolve(6, 2))
    m = AdjFloat(0.5)
    u = AdjFloat(1.0)
    for _ in get_working_tape().timestepper(iter(range(4))):
        u = u * m
    Jhat = ReducedFunctional(u, Control(m))
    with pytest.raises(fe_adjoint.ScheduleError, match="built for 6 steps but the script took 4"):
        Jhat.derivative()


def test_operations_taped_after_evaluation_are_not_part_of_the_run(tmp_path):
    from firedrake.adjoint import AdjFloat, continue_annotation, pause_annotation

    taped = recurrence(Revolve(6, 2), tmp_path)
    before = float(taped.Jhat.derivative())
    continue_annotation()
    AdjFloat(2.0) * taped.m  # taped after the functional, as plain firedrake.adjoint allows
    assert float(taped.Jhat.derivative()) == before
    assert float(taped.Jhat(taped.m)) == float(taped.Jhat.functional)
    pause_annotation()


def test_missing_value_names_step_and_variable(tmp_path):
    taped = heat(Revolve(6, 2), tmp_path)
    taped.Jhat.derivative()
    session = fe_adjoint.tape.get_session()
    session.model.run_forward(0)  # step 0 needs only step-invariant data
    victim = next(iter(session.model.restart_keys(2)))
    victim.checkpoint = None
    with pytest.raises(fe_adjoint.StorageError, match="step 2: the forward needs the value of"):
        session.model.run_forward(2)


def test_enable_requires_an_empty_tape():
    from firedrake.adjoint import AdjFloat

    fresh_tape()
    AdjFloat(1.0) * AdjFloat(2.0)
    with pytest.raises(fe_adjoint.ConfigurationError, match="before anything is taped"):
        fe_adjoint.enable_checkpointing(Revolve(6, 2))
