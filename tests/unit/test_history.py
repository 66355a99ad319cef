"""The optimisation history on its own: what a killed job leaves is readable, mismatches named."""

import os

import numpy as np
import pytest

from fe_adjoint import ConfigurationError, OptimisationHistory


def _filled(path):
    history = OptimisationHistory(path)
    history.start("L-BFGS-B", 3)
    x0, x1 = np.zeros(3), np.array([0.5, 0.25, 0.125])
    history.record_call("J", x0, 2.0)
    history.record_call("dJ", x0, np.array([1.0, 2.0, 3.0]))
    history.record_call("J", x1, 1.5)
    history.record_iteration(x1, 1.5, 0.75)
    return x0, x1


def test_a_history_read_again_answers_the_recorded_calls_in_order(tmp_path):
    x0, x1 = _filled(tmp_path)
    again = OptimisationHistory(tmp_path)
    assert again.replayed == 3 and again.evaluations == 2
    assert again.answer(0, "J", x0) == 2.0
    assert np.array_equal(again.answer(1, "dJ", x0), [1.0, 2.0, 3.0])
    assert again.answer(3, "dJ", x1) is None  # not recorded: it must run
    assert again.iterations[0]["iteration"] == 1 and again.iterations[0]["J"] == 1.5
    assert np.array_equal(again.last_control(), x1)


def test_files_a_killed_job_was_writing_are_dropped(tmp_path):
    _filled(tmp_path)
    (tmp_path / "calls" / "000003.npz.partial").write_bytes(b"half a file")
    (tmp_path / "iterations.json.partial").write_text("[{")
    again = OptimisationHistory(tmp_path)
    assert again.replayed == 3
    assert not [n for root, _, names in os.walk(tmp_path) for n in names
                if n.endswith(".partial")]


def test_another_run_is_named_not_answered(tmp_path):
    x0, _ = _filled(tmp_path)
    again = OptimisationHistory(tmp_path)
    with pytest.raises(ConfigurationError, match="belongs to another run.*history="):
        again.answer(0, "J", x0 + 1.0)
    with pytest.raises(ConfigurationError, match="belongs to another run"):
        again.answer(0, "dJ", x0)
    with pytest.raises(ConfigurationError, match="written with size 3 but this run has 4"):
        again.start("L-BFGS-B", 4)
    with pytest.raises(ConfigurationError, match="method 'L-BFGS-B' but this run has 'CG'"):
        again.start("CG", 3)


def test_an_unwritable_folder_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match="cannot create the optimisation history"):
        OptimisationHistory(blocker / "history")
