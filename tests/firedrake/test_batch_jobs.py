"""Batch jobs under a real Slurm: ``sbatch --wait demos/slurm/job.sh`` on 2 MPI processes.

A single-node Slurm (Debian's slurm-wlm: munged, slurmctld, slurmd) is started for this
module by ``scripts/slurm``. The job runs the heat-inversion demo with its checkpoints on
a node-local folder (``TMPDIR``): its gradient must equal a serial run's, a job ended by
its time limit must clean up and say so, and the job submitted again must continue from
the saved iterations to the control an uninterrupted job reaches.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pytest

from tests.helpers import launcher_environment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLURM = os.path.join(REPO, "scripts", "slurm")
JOB = os.path.join(REPO, "demos", "slurm", "job.sh")
# About 1-2.2 s per iteration on 2 cores (2 processes), 50-130 s in all, by machine.
ITERATIONS = 55
PROBLEM = ["--cells", "24", "--steps", "100", "--snapshots", "4"]
# The job ended by a 1-minute time limit (which Slurm enforces 60 to 90 s after the start)
# keeps one snapshot: the same gradients to round-off, three times the work per iteration,
# so that it outlasts the limit on a fast machine too.
SLOWER = ["--snapshots", "1"]

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(shutil.which("slurmctld") is None or shutil.which("sbatch") is None,
                       reason="Slurm is not installed: bash scripts/install --with-slurm"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the test Slurm runs as root"),
]


def _daemons(folder):
    """Processes whose command line names ``folder`` (the test Slurm's daemons)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if folder.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def _start(folder):
    subprocess.run(["bash", SLURM, "start", folder], check=True, capture_output=True,
                   text=True, timeout=60)
    return launcher_environment(SLURM_CONF=os.path.join(folder, "slurm.conf"))


def _stop(folder):
    subprocess.run(["bash", SLURM, "stop", folder], check=True, capture_output=True,
                   timeout=60)


@pytest.fixture(scope="module")
def base():
    """A short folder for the module: Open MPI's and munge's sockets live in these paths
    (TMPDIR is the job's node-local folder), and a socket's path has at most 107 bytes."""
    folder = tempfile.mkdtemp(prefix="fej-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(base):
    folder = os.path.join(base, "slurm")
    env = _start(folder)
    yield env
    _stop(folder)
    assert _daemons(folder) == []


def submit(env, workdir, *args, time_limit="10"):
    """``sbatch --wait`` the job from ``workdir``; its exit status, log and scratch folder."""
    scratch = os.path.join(workdir, "tmp")
    os.makedirs(scratch, exist_ok=True)
    result = subprocess.run(
        ["sbatch", "--wait", f"--export=ALL,TMPDIR={scratch}", "--time", time_limit, JOB,
         *PROBLEM, "--iterations", str(ITERATIONS), *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=660)
    job = re.search(r"Submitted batch job (\d+)", result.stdout).group(1)
    with open(os.path.join(workdir, f"fe_adjoint-{job}.log")) as f:
        return result.returncode, f.read(), scratch


def _left(scratch, wait=10.0):
    """What is left in ``scratch``, once the watchdogs have had ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while os.listdir(scratch) and time.monotonic() < deadline:
        time.sleep(0.2)
    return sorted(os.listdir(scratch))


def _results(workdir):
    with open(os.path.join(workdir, "results", "results.json")) as f:
        return json.load(f)


def _close(a, b, tol=1e-10):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) <= tol * np.max(np.abs(b))


@pytest.fixture(scope="module")
def uninterrupted(cluster, base):
    workdir = os.path.join(base, "whole")
    os.makedirs(workdir)
    rc, log, scratch = submit(cluster, workdir)
    return workdir, rc, log, scratch


def test_a_two_process_job_gives_the_serial_gradient(uninterrupted):
    from demos import heat_inversion as demo

    workdir, rc, log, scratch = uninterrupted
    assert rc == 0, log
    results = _results(workdir)
    assert results["processes"] == 2 and "2 processes" in log
    Jhat, m = demo.problem(demo.parse([*PROBLEM, "--disk-dir", str(workdir)]))
    serial = demo.probes(Jhat.derivative(), m.function_space().mesh())
    assert _close(results["gradient_probes"], serial), (results["gradient_probes"], serial)
    assert len(results["iterations"]) == ITERATIONS
    assert f"fe_adjoint: iteration {ITERATIONS}:" in log
    assert _left(scratch) == []
    for name in ("report.json", "control.h5", "results.json"):
        assert os.path.exists(os.path.join(workdir, "results", name))


def test_a_job_ended_by_its_time_limit_cleans_up_and_the_next_continues(cluster, uninterrupted,
                                                                        base):
    workdir = os.path.join(base, "ended")
    os.makedirs(workdir)
    rc, log, scratch = submit(cluster, workdir, *SLOWER, time_limit="1")
    assert rc != 0 and "DUE TO TIME LIMIT" in log, log
    assert re.search(r"fe_adjoint.*(SIGTERM received|ended without removing its checkpoint)",
                     log), log
    assert _left(scratch) == []
    with open(os.path.join(workdir, "results", "history", "iterations.json")) as f:
        done = len(json.load(f))
    assert 0 < done < ITERATIONS, f"the job was ended after {done} iterations"

    rc, log, scratch = submit(cluster, workdir)
    assert rc == 0, log
    assert f"continuing the optimisation in {workdir}/results/history: {done} iterations" in log
    assert _left(scratch) == []
    reference = _results(uninterrupted[0])
    results = _results(workdir)
    assert _close(results["control_probes"], reference["control_probes"])
    assert abs(results["control_norm"] - reference["control_norm"]) <= 1e-10 * reference[
        "control_norm"]
    assert [i["J"] for i in results["iterations"]] == pytest.approx(
        [i["J"] for i in reference["iterations"]], rel=1e-10)


def test_the_test_slurm_starts_and_stops_within_a_minute_leaving_no_daemon(base):
    folder = os.path.join(base, "another-slurm")
    t0 = time.monotonic()
    env = _start(folder)
    started = time.monotonic() - t0
    info = subprocess.run(["sinfo", "-h", "-o", "%T %c"], env=env, capture_output=True,
                          text=True, check=True).stdout.split()
    assert info == ["idle", str(os.cpu_count())]
    assert len(_daemons(folder)) == 3  # munged, slurmctld, slurmd
    _stop(folder)
    assert time.monotonic() - t0 < 60, f"started in {started:.1f} s, stopped after that"
    assert _daemons(folder) == [] and not os.path.exists(folder)
