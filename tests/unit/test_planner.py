"""The planner on given costs: budgets kept, counts equal to the driver's."""

import pytest
from checkpoint_schedules import MixedCheckpointSchedule, MultistageCheckpointSchedule

from fe_adjoint import ConfigurationError, StepCosts, plan
from fe_adjoint.planning import parse_bytes
from fe_adjoint.planning.simulate import simulate
from tests.helpers import dry_run_forward_steps

COSTS = StepCosts(forward_s=0.03, replay_s=0.01, adjoint_s=0.006, restart_bytes=32_000,
                  adjoint_bytes=24_000)


def test_sizes_are_read_with_units():
    assert parse_bytes("4GiB") == 4 * 2**30
    assert parse_bytes("500 MB") == 500 * 10**6
    assert parse_bytes(1234) == 1234
    with pytest.raises(ConfigurationError, match="cannot read '4 parsecs'"):
        parse_bytes("4 parsecs")


@pytest.mark.parametrize("make", [lambda: MultistageCheckpointSchedule(60, 4, 0),
                                  lambda: MixedCheckpointSchedule(60, 4)])
def test_simulated_steps_are_the_schedules_own(make):
    assert simulate(make(), 60, 10, 10).forward_steps == dry_run_forward_steps(make(), 60)


@pytest.mark.parametrize("steps, memory, disk", [(200, "300KiB", 0), (200, "150KiB", "2MiB"),
                                                 (1000, "1MiB", "10MiB"), (50, "inf", 0)])
def test_every_candidate_fits_and_the_fastest_is_chosen(steps, memory, disk):
    chosen = plan(steps, COSTS, memory, disk)
    assert chosen.candidates
    for candidate in chosen.candidates:
        assert candidate.memory <= chosen.memory and candidate.disk <= chosen.disk
    assert chosen.seconds == sorted(chosen.seconds)
    assert chosen.schedule() is not chosen.schedule()  # a new one each time
    assert chosen.choice.label() in chosen.explain()


def test_no_limit_stores_everything():
    assert plan(50, COSTS).choice.usage.recomputed == 0


def test_a_plan_that_cannot_fit_says_what_would():
    with pytest.raises(ConfigurationError, match=r"least that fits is memory 54.7 KiB"):
        plan(100, COSTS, "10KiB", 0)


def test_online_plans_need_the_most_steps():
    with pytest.raises(ConfigurationError, match="expected_steps"):
        plan(None, COSTS, "1MiB", "10MiB")
    chosen = plan(None, COSTS, "300KiB", "10MiB", expected_steps=500)
    assert chosen.choice.name in ("two-level", "disk", "memory")
    assert chosen.choice.make().max_n is None
