"""Every fe-adjoint command through a real subprocess (clean: tests/firedrake/test_signals.py)."""

import json
import subprocess
import sys

import pytest


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


@pytest.mark.parametrize("command", ["info", "demo", "plan", "report", "clean"])
def test_every_cli_command_has_help(command):
    result = _cli(command, "--help")
    assert result.returncode == 0 and f"fe-adjoint {command}" in result.stdout


def test_cli_info_and_an_unknown_demo():
    info = _cli("info")
    assert info.returncode == 0 and "firedrake" in info.stdout.lower()
    unknown = _cli("demo", "no-such-demo")
    assert unknown.returncode == 2 and "demos:" in unknown.stderr
