"""A failed or interrupted pass never poisons the next one.

Each test breaks a pass (a real SIGINT mid-adjoint, an exception mid-forward, a deleted
checkpoint file, a bad control value) and checks that the next call is right (equal to
the store-everything reference) or names what failed and the fix.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fe_adjoint
from tests.helpers import N_STEPS, SCHEDULES, control_values, heat, relative_error

TOL = 1e-12
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAULT_SCHEDULES = ["revolve", "mixed_disk"]


def _interrupt_once(monkeypatch, method, at_step, action):
    """Make the step model's ``method`` run ``action()`` when it reaches ``at_step``, once."""
    from fe_adjoint.checkpointing.step_model import PyadjointStepModel

    original = getattr(PyadjointStepModel, method)
    fired = []

    def patched(self, n, *args):
        if n == at_step and not fired:
            fired.append(n)
            action()
        return original(self, n, *args)

    monkeypatch.setattr(PyadjointStepModel, method, patched)
    return fired


def _sigint():
    signal.raise_signal(signal.SIGINT)  # Python's handler raises KeyboardInterrupt


@pytest.fixture(autouse=True)
def _python_sigint_handler():
    """Python's Ctrl-C handler, as in a script run from a terminal.

    A test run started in the background of a non-interactive shell ignores SIGINT, and
    Python then installs no handler: the real SIGINT of these tests would do nothing.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("schedule", FAULT_SCHEDULES)
def test_ctrl_c_mid_derivative_then_derivative_is_right(schedule, tmp_path, references,
                                                        monkeypatch):
    expected = references("heat")
    taped = heat(SCHEDULES[schedule](N_STEPS), tmp_path)
    fired = _interrupt_once(monkeypatch, "run_reverse", 2, _sigint)
    with pytest.raises(KeyboardInterrupt):
        taped.Jhat.derivative()
    assert fired
    for _ in range(2):
        assert relative_error(taped.Jhat.derivative(), expected[0][1]) <= TOL
    value = control_values(taped)[1]
    assert float(taped.Jhat(value)) == pytest.approx(expected[1][0], rel=TOL)
    assert relative_error(taped.Jhat.derivative(), expected[1][1]) <= TOL


def _diverge():
    raise RuntimeError("Newton diverged")


@pytest.mark.parametrize("fault", ["diverged", "ctrl_c"])
@pytest.mark.parametrize("schedule", FAULT_SCHEDULES)
def test_a_failed_evaluation_is_named_by_the_next_derivative(schedule, fault, tmp_path,
                                                             references, monkeypatch):
    expected = references("heat")
    taped = heat(SCHEDULES[schedule](N_STEPS), tmp_path)
    value = control_values(taped)[1]
    error, what = {"diverged": (RuntimeError, r"RuntimeError: Newton diverged"),
                   "ctrl_c": (KeyboardInterrupt, "KeyboardInterrupt")}[fault]
    _interrupt_once(monkeypatch, "run_forward", 3, _diverge if fault == "diverged" else _sigint)
    with pytest.raises(error):
        taped.Jhat(value)
    named = rf"last evaluation of the functional failed \({what}.*\).*Jhat\(m\)"
    for differentiate in (taped.Jhat.derivative, lambda: taped.Jhat.tlm(taped.direction),
                          lambda: taped.Jhat.hessian(taped.direction)):
        with pytest.raises(fe_adjoint.ScheduleError, match=named):
            differentiate()
    assert float(taped.Jhat(value)) == pytest.approx(expected[1][0], rel=TOL)
    assert relative_error(taped.Jhat.derivative(), expected[1][1]) <= TOL


@pytest.mark.parametrize("bad", ["other_space", "nan"])
def test_a_bad_control_value_is_refused_before_anything_runs(bad, tmp_path, references):
    from firedrake import Function, FunctionSpace

    expected = references("heat")
    taped = heat(SCHEDULES["revolve"](N_STEPS), tmp_path)
    assert relative_error(taped.Jhat.derivative(), expected[0][1]) <= TOL
    before = fe_adjoint.stats()["forward_steps"]
    if bad == "nan":
        value = taped.m.copy(deepcopy=True)
        value.dat.data[0] = np.nan
        match = "control 0: the value is not finite"
    else:
        value = Function(FunctionSpace(taped.m.function_space().mesh(), "CG", 2))
        match = "control 0: the value is in .* the control in"
    with pytest.raises(fe_adjoint.ConfigurationError, match=match):
        taped.Jhat(value)
    assert fe_adjoint.stats()["forward_steps"] == before  # nothing was run
    # the tape is still at the control it was taped at
    assert relative_error(taped.Jhat.derivative(), expected[0][1]) <= TOL
    assert float(taped.Jhat(control_values(taped)[2])) == pytest.approx(expected[2][0], rel=TOL)


def test_a_deleted_checkpoint_is_named_and_the_next_derivative_recomputes(tmp_path, references,
                                                                         monkeypatch):
    expected = references("heat")
    taped = heat(SCHEDULES["mixed_disk"](N_STEPS), tmp_path)

    def delete_files():
        for root, _, names in os.walk(tmp_path):
            for name in names:
                os.remove(os.path.join(root, name))

    _interrupt_once(monkeypatch, "run_reverse", N_STEPS - 1, delete_files)
    with pytest.raises(fe_adjoint.StorageError, match="is missing; it was deleted"):
        taped.Jhat.derivative()
    assert relative_error(taped.Jhat.derivative(), expected[0][1]) <= TOL


def test_a_run_whose_taping_failed_says_so_at_every_later_call(tmp_path):
    from checkpoint_schedules import Revolve
    from firedrake.adjoint import (
        AdjFloat,
        Control,
        ReducedFunctional,
        get_working_tape,
        pause_annotation,
    )

    from tests.helpers import fresh_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(Revolve(6, 2), disk_dir=tmp_path)
    m = AdjFloat(0.5)
    J = AdjFloat(0.0)
    for _ in get_working_tape().timestepper(iter(range(4))):  # 4 steps, not the 6
        J = J + m * m
    pause_annotation()
    Jhat = ReducedFunctional(J, Control(m))
    with pytest.raises(fe_adjoint.ScheduleError, match="built for 6 steps but the script took 4"):
        Jhat.derivative()
    for call in (Jhat.derivative, lambda: Jhat(m)):
        with pytest.raises(fe_adjoint.ScheduleError, match="taping this run failed.*new tape"):
            call()


def _checkpoint_files(folder):
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                  for name in names)


@pytest.mark.parametrize("damage", ["truncated", "emptied", "swapped"])
def test_a_damaged_checkpoint_file_is_named_not_read(damage, tmp_path, references,
                                                    monkeypatch):
    import shutil

    expected = references("heat")
    taped = heat(SCHEDULES["single_disk"](N_STEPS), tmp_path)

    def damage_files():
        files = _checkpoint_files(tmp_path)
        victim = files[len(files) // 2]
        if damage == "swapped":
            other = next(f for f in files if f != victim)
            shutil.copyfile(other, victim)
        else:
            size = os.path.getsize(victim)
            with open(victim, "r+b") as f:
                f.truncate(size // 2 if damage == "truncated" else 0)

    _interrupt_once(monkeypatch, "run_reverse", N_STEPS - 1, damage_files)
    with pytest.raises(fe_adjoint.StorageError,
                       match=r"checkpoint file .*\.h5 of step \d+ cannot be read .*damaged or "
                             r"replaced.*keep disk_dir untouched"):
        taped.Jhat.derivative()
    assert relative_error(taped.Jhat.derivative(), expected[0][1]) <= TOL


def test_a_relative_disk_dir_survives_a_change_of_directory(tmp_path, references, monkeypatch):
    expected = references("heat")
    monkeypatch.chdir(tmp_path)
    os.mkdir("checkpoints")
    taped = heat(SCHEDULES["mixed_disk"](N_STEPS), "checkpoints")
    monkeypatch.chdir("/")
    assert relative_error(taped.Jhat.derivative(), expected[0][1]) <= TOL
    assert fe_adjoint.stats()["peak_bytes"]["DISK"]["restart"] > 0
    assert not os.path.exists("/checkpoints")


def test_one_schedule_object_serves_two_tapes(tmp_path, references):
    from firedrake.adjoint import Tape, set_working_tape

    expected = references("heat")
    schedule = SCHEDULES["revolve"](N_STEPS)
    first = heat(schedule, tmp_path)
    assert relative_error(first.Jhat.derivative(), expected[0][1]) <= TOL
    set_working_tape(Tape())
    second = heat(schedule, tmp_path)
    assert relative_error(second.Jhat.derivative(), expected[0][1]) <= TOL


def test_a_schedule_iterated_elsewhere_is_refused():
    from checkpoint_schedules import Revolve

    from tests.helpers import fresh_tape

    schedule = Revolve(4, 2)
    next(schedule)
    fresh_tape()
    with pytest.raises(fe_adjoint.ConfigurationError, match="already been iterated.*not been used"):
        fe_adjoint.enable_checkpointing(schedule)


def test_a_script_that_marks_no_step_is_told_to(tmp_path):
    from firedrake.adjoint import AdjFloat, Control, ReducedFunctional, pause_annotation

    from tests.helpers import fresh_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(SCHEDULES["revolve"](4), disk_dir=tmp_path)
    m = AdjFloat(0.5)
    J = AdjFloat(0.0)
    for _ in range(4):  # the loop is not marked
        J = J + m * m
    pause_annotation()
    with pytest.raises(fe_adjoint.ScheduleError,
                       match=r"no time step was marked.*fe_adjoint\.steps\(4\)"):
        ReducedFunctional(J, Control(m)).derivative()


def test_enable_checkpointing_before_a_tape_exists_is_told_how():
    script = (f"import sys; sys.path.insert(0, {REPO!r})\n"
              "import fe_adjoint\n"
              "from checkpoint_schedules import Revolve\n"
              "fe_adjoint.enable_checkpointing(Revolve(4, 2))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert "ConfigurationError: there is no working tape yet" in result.stderr
    assert "import firedrake.adjoint" in result.stderr
