"""What users do around a gradient: optimise, read the report, reset the tape, watch progress."""

import gc
import os

import pytest
from checkpoint_schedules import MixedCheckpointSchedule, Revolve, SingleDiskStorageSchedule

import fe_adjoint
from tests.helpers import N_STEPS, as_array, heat, reaction_diffusion, recurrence


def test_minimize_reaches_a_stationary_point(tmp_path):
    from firedrake.adjoint import minimize

    taped = recurrence(MixedCheckpointSchedule(N_STEPS, 2), tmp_path)
    J0 = float(taped.Jhat(taped.m))
    g0 = float(taped.Jhat.derivative())
    m_opt = minimize(taped.Jhat, method="L-BFGS-B", options={"gtol": 1e-12})
    assert float(taped.Jhat(m_opt)) < J0
    assert abs(float(taped.Jhat.derivative())) < 1e-5 * abs(g0)


def test_report_lists_steps_bytes_and_times(tmp_path, capsys):
    taped = reaction_diffusion(Revolve(N_STEPS, 2), tmp_path)
    taped.Jhat.derivative()
    text = fe_adjoint.report()
    assert text in capsys.readouterr().out
    stats = fe_adjoint.stats()
    assert f"forward steps run : {stats['forward_steps']}" in text
    assert stats["peak_bytes"]["RAM"]["restart"] > 0
    assert stats["seconds"]["reverse"] > 0


def test_files_are_removed_when_the_tape_is_replaced(tmp_path):
    from firedrake.adjoint import Tape, set_working_tape

    taped = heat(SingleDiskStorageSchedule(), tmp_path)
    taped.Jhat.derivative()
    assert os.listdir(tmp_path) != []
    del taped
    set_working_tape(Tape())
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_progress_is_printed_when_asked_for(capfd):
    from firedrake.adjoint import AdjFloat, Control, ReducedFunctional, pause_annotation

    from tests.helpers import fresh_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(Revolve(4, 1), progress_every=2)
    m = AdjFloat(0.5)
    u = AdjFloat(1.0)
    for _ in fe_adjoint.steps(4):
        u = u * m
    pause_annotation()
    ReducedFunctional(u, Control(m)).derivative()
    err = capfd.readouterr().err
    assert "[fe_adjoint] reverse step 2" in err and "[fe_adjoint] forward step 0" in err


def test_a_second_schedule_on_a_new_tape_in_the_same_process(tmp_path):
    first = recurrence(Revolve(N_STEPS, 2), tmp_path)
    g1 = as_array(first.Jhat.derivative()).copy()
    second = recurrence(MixedCheckpointSchedule(N_STEPS, 3), tmp_path)
    assert as_array(second.Jhat.derivative()) == pytest.approx(g1, rel=1e-14)
