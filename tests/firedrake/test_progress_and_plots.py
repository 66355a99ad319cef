"""What users look at: progress bars on a terminal, schedule and Taylor plots in files."""

import os
import pty
import subprocess
import sys
import textwrap

import pytest
from checkpoint_schedules import MultistageCheckpointSchedule, Revolve

import fe_adjoint
from tests.helpers import N_STEPS, dry_run_forward_steps, reaction_diffusion

SCRIPT = textwrap.dedent("""
    import fe_adjoint
    from checkpoint_schedules import Revolve
    from firedrake.adjoint import AdjFloat, Control, ReducedFunctional, pause_annotation
    from tests.helpers import fresh_tape

    fresh_tape()
    fe_adjoint.enable_checkpointing(Revolve(6, 1), progress={progress})
    m = u = AdjFloat(0.5)
    for _ in fe_adjoint.steps(6):
        u = u * m + 0.1
    pause_annotation()
    ReducedFunctional(u, Control(m)).derivative()
    print("done")
""")
RECOMPUTED = dry_run_forward_steps(Revolve(6, 1), 6) - 6
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_on_a_terminal(progress) -> str:
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", SCRIPT.format(progress=progress)],
                               stdout=follower, stderr=follower, cwd=ROOT)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert process.wait(timeout=300) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_a_terminal_shows_taping_and_adjoint_bars_with_recomputed_steps():
    shown = _run_on_a_terminal(None)
    assert "taping" in shown and "6/6 steps" in shown
    final = [line for line in shown.replace("\r", "\n").split("\n") if line.startswith("adjoint")]
    assert final and f"6/6 steps, {RECOMPUTED} recomputed" in final[-1]
    assert "steps," not in _run_on_a_terminal(False)


def test_no_bars_when_output_is_not_a_terminal_unless_asked():
    def run(progress):
        return subprocess.run([sys.executable, "-c", SCRIPT.format(progress=progress)],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)

    quiet = run(None)
    assert quiet.returncode == 0 and "steps," not in quiet.stderr
    asked = run(True)
    assert asked.returncode == 0 and f"6/6 steps, {RECOMPUTED} recomputed" in asked.stderr


def _looks_like_a_plot(path):
    import matplotlib.image

    assert os.path.getsize(path) > 1000
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_schedule_and_plan_plots(tmp_path):
    schedule = MultistageCheckpointSchedule(40, 2, 3)
    _looks_like_a_plot(fe_adjoint.plot_schedule(schedule, 40, tmp_path / "multistage.png"))
    assert not schedule.is_exhausted and next(schedule) is not None  # it was not iterated
    costs = fe_adjoint.StepCosts(0.03, 0.01, 32000, 24000)
    chosen = fe_adjoint.plan(100, costs, "300KiB", "1MiB")
    _looks_like_a_plot(fe_adjoint.plot_schedule(chosen, 100, tmp_path / "plan.png"))


def test_taylor_plot_of_gradient_and_hessian(tmp_path):
    taped = reaction_diffusion(Revolve(N_STEPS, 2), tmp_path)
    result = fe_adjoint.taylor_plot(taped.Jhat, taped.m, taped.direction,
                                    tmp_path / "taylor.png", hessian=True)
    assert result["rates"]["R0"] == pytest.approx(1.0, abs=0.1)
    assert result["rates"]["R1"] >= 1.95
    assert result["rates"]["R2"] >= 2.9
    _looks_like_a_plot(tmp_path / "taylor.png")
