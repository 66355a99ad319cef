"""Real signals mid-adjoint: SIGTERM leaves no file and says so; after a SIGKILL the
folder's watchdog removes it, and had the watchdog died too, the next run sweeps up.

Each run is a real subprocess that signals itself half-way through its adjoint (Slurm's
SIGTERM at the time limit, a SIGKILL by the out-of-memory killer, a node failure that
takes the watchdog with it).
"""

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    from tests.helpers import SCHEDULES, N_STEPS, heat
    from fe_adjoint.checkpointing.step_model import PyadjointStepModel
    from fe_adjoint.checkpointing.storage import folders
    taped = heat(SCHEDULES["mixed_disk"](N_STEPS), {disk_dir!r})
    original = PyadjointStepModel.run_reverse

    def run_reverse(self, n, *args):
        if n == N_STEPS - 2:
            files = sum(len(names) for _, _, names in os.walk({disk_dir!r}))
            print("files before the signal", files, flush=True)
            for _, watchdog in list(folders._LIVE.values()) if {kill_watchdogs} else []:
                watchdog.kill()
                watchdog.wait()
            os.kill(os.getpid(), signal.{signal})
        return original(self, n, *args)

    PyadjointStepModel.run_reverse = run_reverse
    taped.Jhat.derivative()
""")


def _run(disk_dir, signame, kill_watchdogs=False):
    script = SCRIPT.format(repo=REPO, disk_dir=str(disk_dir), signal=signame,
                           kill_watchdogs=kill_watchdogs)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, preexec_fn=_default_sigint)


def _default_sigint():
    # As a script started from a terminal: a test run started in the background of a
    # non-interactive shell ignores SIGINT, which its children would inherit (and Python
    # then never raises KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _entries(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_mid_adjoint_removes_the_checkpoint_files(tmp_path, signame):
    result = _run(tmp_path, signame)
    if signame == "SIGTERM":
        assert result.returncode == -signal.SIGTERM, result.stderr  # the signal's own ending
        assert re.search(r"fe_adjoint: SIGTERM received \(the batch system's time limit, "
                         r"scancel or kill\): removed checkpoint folder .*fe_adjoint-\S+ "
                         r"\([1-9]\d* files\); ending the process", result.stderr), result.stderr
    else:
        assert "KeyboardInterrupt" in result.stderr  # Python's own ending for a Ctrl-C
    assert "files before the signal" in result.stdout
    assert int(result.stdout.split()[-1]) > 0  # there was something to remove
    assert _entries(tmp_path) == []


def test_after_sigkill_the_watchdog_removes_the_folder(tmp_path):
    result = _run(tmp_path, "SIGKILL")
    assert result.returncode == -signal.SIGKILL
    assert int(result.stdout.split()[-1]) > 0
    assert "ended without removing its checkpoint folder" in result.stderr, result.stderr
    assert _entries(tmp_path) == []


def test_after_sigkill_of_process_and_watchdog_the_next_run_removes_the_dead_folder(tmp_path):
    from fe_adjoint.checkpointing.storage import folders

    result = _run(tmp_path, "SIGKILL", kill_watchdogs=True)
    assert result.returncode == -signal.SIGKILL
    (left,) = _entries(tmp_path)  # nothing was left to clean up ...
    assert folders.owner(left)[1] > 0  # ... but the folder names its owner
    dead, elsewhere = folders.stale(str(tmp_path))
    assert [os.path.basename(p) for p in dead] == [left] and elsewhere == []
    result = _run(tmp_path, "SIGTERM")  # a later run in the same disk_dir
    assert result.returncode == -signal.SIGTERM
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("dry_run", [True, False])
def test_fe_adjoint_clean_lists_and_removes_dead_folders(tmp_path, dry_run):
    assert _run(tmp_path, "SIGKILL", kill_watchdogs=True).returncode == -signal.SIGKILL
    (left,) = _entries(tmp_path)
    live = tmp_path / "fe_adjoint-otherhost-1-1-abcdefgh"  # a folder made on another host
    live.mkdir()
    args = ["clean", str(tmp_path)] + (["--dry-run"] if dry_run else [])
    result = subprocess.run([sys.executable, "-m", "fe_adjoint.cli", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{'stale' if dry_run else 'removed'}: " in result.stdout and left in result.stdout
    assert f"kept: {live}" in result.stdout
    assert (left in _entries(tmp_path)) == dry_run
    assert live.name in _entries(tmp_path)


FULL_DISK_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    import fe_adjoint
    from tests.helpers import SCHEDULES, N_STEPS, as_array, heat, relative_error
    from fe_adjoint.checkpointing.step_model import PyadjointStepModel
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    expected = as_array(heat(SCHEDULES["single_memory"](N_STEPS)).Jhat.derivative()).copy()
    taped = heat(SCHEDULES["mixed_disk"](N_STEPS), {disk_dir!r})
    original = PyadjointStepModel.run_reverse
    def run_reverse(self, n, *args):  # the disk fills up half-way through the adjoint
        if n == N_STEPS - 1:
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        return original(self, n, *args)
    PyadjointStepModel.run_reverse = run_reverse
    try:
        taped.Jhat.derivative()
    except fe_adjoint.StorageError as exc:
        print("error:", exc)
    PyadjointStepModel.run_reverse = original
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)  # space freed
    print("after:", relative_error(taped.Jhat.derivative(), expected))
""")


def test_a_full_disk_mid_adjoint_is_named_and_the_next_derivative_is_right(tmp_path):
    script = FULL_DISK_SCRIPT.format(repo=REPO, disk_dir=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "error: cannot write the checkpoint of step" in result.stdout
    assert "the file size limit is reached" in result.stdout
    assert "free space or pass another disk_dir=" in result.stdout
    assert float(result.stdout.split("after:")[1]) <= 1e-12
    assert _entries(tmp_path) == []


MPI_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    from mpi4py import MPI
    from tests.helpers import N_STEPS, SCHEDULES, as_array, reaction_diffusion, relative_error
    from fe_adjoint.checkpointing.step_model import PyadjointStepModel
    comm = MPI.COMM_WORLD
    serial = reaction_diffusion(SCHEDULES["single_memory"](N_STEPS), comm=MPI.COMM_SELF)
    expected = as_array(serial.Jhat.derivative()).copy()
    taped = reaction_diffusion(SCHEDULES["mixed_disk"](N_STEPS), {disk_dir!r}, comm=comm)
    if {kill!r}:
        original = PyadjointStepModel.run_reverse
        def run_reverse(self, n, *args):
            if n == N_STEPS - 2 and comm.rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, n, *args)
        PyadjointStepModel.run_reverse = run_reverse
    error = relative_error(taped.Jhat.derivative(), expected)
    with open(os.path.join({results!r}, "rank%d" % comm.rank), "w") as f:  # stdout interleaves
        f.write(repr(error))
""")


def _mpiexec(disk_dir, results, kill):
    import time

    from tests.helpers import launcher_environment

    env = launcher_environment()
    script = MPI_SCRIPT.format(repo=REPO, disk_dir=str(disk_dir), results=str(results),
                               kill=kill)
    start = time.perf_counter()
    result = subprocess.run(["mpiexec", "-n", "2", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=240, env=env)
    return result, time.perf_counter() - start


def test_mpiexec_ends_when_a_rank_is_killed_and_a_later_run_works(tmp_path):
    disk, results = tmp_path / "disk", tmp_path / "results"
    disk.mkdir()
    results.mkdir()
    killed, seconds = _mpiexec(disk, results, kill=True)
    assert killed.returncode != 0
    assert seconds < 60 + 30  # start-up and taping included; the kill itself ends it fast
    assert "rank1" not in _entries(results)
    for name in _entries(results):
        (results / name).unlink()
    later, _ = _mpiexec(disk, results, kill=False)
    assert later.returncode == 0, later.stderr
    assert _entries(results) == ["rank0", "rank1"]
    errors = [float((results / name).read_text()) for name in _entries(results)]
    assert max(errors) <= 1e-10, errors
    assert _entries(disk) == []  # the killed run's folder was swept or removed
