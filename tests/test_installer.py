"""The installer: a failing step names itself and its log; --print-venv names the environment."""

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL = os.path.join(REPO, "scripts", "install")


def run_install(tmp_path, *args, python="/bin/false"):
    env = dict(os.environ, FE_ADJOINT_CACHE=str(tmp_path), FE_ADJOINT_PYTHON=python)
    return subprocess.run(["bash", INSTALL, *args], capture_output=True, text=True, env=env)


def test_failing_step_names_itself_and_its_log(tmp_path):
    result = run_install(tmp_path)
    log = tmp_path / "logs" / "petsc-3.26.0.log"
    assert result.returncode == 1
    assert f"step 'petsc-3.26.0' failed; its log is {log}" in result.stderr
    assert log.exists()


def test_print_venv_names_a_directory_in_the_cache(tmp_path):
    result = run_install(tmp_path, "--print-venv", python="python3")
    assert result.returncode == 0
    assert result.stdout.strip().startswith(str(tmp_path / "venv" / "fd2026.10.0-"))


def test_unknown_option_is_refused(tmp_path):
    result = run_install(tmp_path, "--bogus")
    assert result.returncode == 2 and "unknown option '--bogus'" in result.stderr
