"""The planner on given costs: budgets kept, counts equal to the driver's, the CLI."""

import json
import subprocess
import sys

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


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fe_adjoint.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_plan_prints_the_table():
    result = _cli("plan", "--steps", "200", "--memory", "300KiB", "--disk", "2MiB",
                  "--step-bytes", "32KB", "--forward-s", "0.03", "--adjoint-s", "0.01")
    assert result.returncode == 0, result.stderr
    assert "chosen:" in result.stdout and "predicted s" in result.stdout


def test_cli_plan_with_impossible_budgets_fails_saying_what_fits():
    result = _cli("plan", "--steps", "100", "--memory", "1KiB", "--step-bytes", "32KB",
                  "--forward-s", "0.03", "--adjoint-s", "0.01")
    assert result.returncode == 1
    assert "least that fits is memory" in result.stderr
    missing = _cli("plan", "--steps", "100")
    assert missing.returncode == 2 and "--forward-s" in missing.stderr


def test_cli_report_prints_a_saved_run_and_plans_from_it(tmp_path):
    stats = {"forward_steps": 26, "reverse_steps": 12, "seconds": {"forward": 0.1,
             "reverse": 0.2}, "linear_solves": {"tangent": 0, "second_order": 0},
             "captured_inputs": 1, "captured_bytes": 8, "schedule": "mixed(snapshots=3)",
             "peak_bytes": {lv: {"restart": 8, "adjoint": 8} for lv in ("RAM", "DISK", "WORK")},
             "peak_total_bytes": {"RAM": 16, "DISK": 0, "WORK": 8},
             "costs": {"forward_s": 0.03, "replay_s": 0.01, "adjoint_s": 0.02,
                       "restart_bytes": 800, "adjoint_bytes": 400}}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"fe_adjoint": "0.1.0", "stats": stats}))
    result = _cli("report", str(path))
    assert result.returncode == 0, result.stderr
    assert "forward steps run : 26" in result.stdout and "mixed(snapshots=3)" in result.stdout
    planned = _cli("plan", "--steps", "50", "--memory", "4KiB", "--from-report", str(path))
    assert planned.returncode == 0, planned.stderr
    assert "adjoint 0.02 s" in planned.stdout
    (tmp_path / "bad.json").write_text("{not json")
    bad = _cli("report", str(tmp_path / "bad.json"))
    assert bad.returncode == 1 and "save_report" in bad.stderr
