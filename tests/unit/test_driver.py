"""The schedule driver on a scalar recurrence, every schedule: right data, right counts."""

import copy

import pytest
from checkpoint_schedules import MixedCheckpointSchedule, Revolve, StorageType

from fe_adjoint.checkpointing.driver import StepDriver
from fe_adjoint.checkpointing.storage import RamStorage
from fe_adjoint.errors import ScheduleError
from tests.helpers import SCHEDULES, dry_run_forward_steps

from .fake_tape import FloatCodec, RecurrenceModel, exact

N = 12


def make_driver(schedule, model):
    # Both levels are RAM-backed here: the driver sees two independent levels.
    def make_level(storage):
        level = RamStorage(FloatCodec())
        level.name = storage.name
        return level

    return StepDriver(schedule, model, make_level)


def tape(name, m=0.3, u0=0.4, n=N):
    model = RecurrenceModel(m, u0)
    driver = make_driver(SCHEDULES[name](n), model)
    for k in range(n):
        model.tape_step(k)
        if k < n - 1:
            driver.taped_step(k)
    driver.finish_taping()
    return model, driver


def gradient(model, driver):
    model.adjoint = {("J", N): 1.0}
    driver.reverse(markings=False)
    return model.adjoint["m"], model.adjoint[("u", 0)]


@pytest.mark.parametrize("name", SCHEDULES, ids=list(SCHEDULES))
def test_gradient_after_taping_and_repeated(name):
    model, driver = tape(name)
    _, dm, du0 = exact(0.3, 0.4, N)
    assert gradient(model, driver) == pytest.approx((dm, du0), rel=1e-14)
    assert gradient(model, driver) == pytest.approx((dm, du0), rel=1e-14)


@pytest.mark.parametrize("name", SCHEDULES, ids=list(SCHEDULES))
def test_gradient_at_new_controls(name):
    model, driver = tape(name)
    model.index.kept.add(("J", N))  # the functional, as ReducedFunctional asks for it
    for m in (0.1, -0.2):
        model.current["m"] = m
        driver.forward()
        J, dm, du0 = exact(m, 0.4, N)
        assert model.current[("J", N)] == pytest.approx(J, rel=1e-14)
        assert gradient(model, driver) == pytest.approx((dm, du0), rel=1e-14)


@pytest.mark.parametrize("name", SCHEDULES, ids=list(SCHEDULES))
def test_forward_steps_match_dry_run(name):
    model, driver = tape(name)
    gradient(model, driver)
    assert driver.stats.forward_steps == dry_run_forward_steps(SCHEDULES[name](N), N)
    assert driver.stats.reverse_steps == N


def test_mixed_runs_fewer_forward_steps_than_revolve():
    counts = {}
    for name, schedule in {"mixed": MixedCheckpointSchedule(100, 10, storage=StorageType.RAM),
                           "revolve": Revolve(100, 10)}.items():
        model = RecurrenceModel(0.01, 0.1)
        driver = make_driver(schedule, model)
        for k in range(100):
            model.tape_step(k)
            if k < 99:
                driver.taped_step(k)
        driver.finish_taping()
        model.adjoint = {("J", 100): 1.0}
        driver.reverse(markings=False)
        counts[name] = driver.stats.forward_steps
    assert counts == {"mixed": 237, "revolve": 322}


def test_memory_is_bounded_by_the_schedule():
    model, driver = tape("revolve", n=40)
    model.adjoint = {("J", 40): 1.0}
    driver.reverse(markings=False)
    ram = driver.levels[StorageType.RAM]
    assert ram.steps() == []
    assert max(ram.peak_bytes.values()) <= 2 * 2 * 8  # 2 snapshots of (u, J)


def test_wrong_step_count_is_named():
    model = RecurrenceModel(0.3, 0.4)
    driver = make_driver(Revolve(5, 2), model)
    for k in range(4):
        model.tape_step(k)
        if k < 3:
            driver.taped_step(k)
    with pytest.raises(ScheduleError, match="built for 5 steps but the script took 4"):
        driver.finish_taping()


def test_unknown_action_has_a_loud_fallback():
    model, driver = tape("revolve")
    with pytest.raises(TypeError, match="no handler"):
        driver._process(object())


def test_pristine_schedule_is_not_consumed():
    schedule = Revolve(N, 3)
    before = copy.deepcopy(schedule)
    model = RecurrenceModel(0.3, 0.4)
    make_driver(schedule, model)
    assert [repr(a) for a in before][:3] == [repr(a) for a in copy.deepcopy(schedule)][:3]


@pytest.mark.parametrize(
    "name", ["revolve", "mixed_ram", "multistage_ram", "two_level_ram", "single_disk"]
)
def test_nothing_but_invariants_is_held_after_the_adjoint(name):
    model, driver = tape(name)
    gradient(model, driver)
    assert set(model.current) == {"m", ("u", 0), ("J", 0)}


def test_work_memory_during_revolve_holds_at_most_one_steps_adjoint_data():
    model, driver = tape("revolve", n=30)
    model.adjoint = {("J", 30): 1.0}
    peak = 0
    original = model.run_reverse

    def watched(n, markings):
        nonlocal peak
        peak = max(peak, len(model.current))
        original(n, markings)

    model.run_reverse = watched
    driver.reverse(markings=False)
    # invariants (3) + one step's adjoint data (u_n, u_{n+1}) + the forward frontier (u, J)
    assert peak <= 3 + 2 + 2
