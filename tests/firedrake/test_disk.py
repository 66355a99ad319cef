"""Disk storage: files removed when freed and at exit; clear errors for bad directories, files."""

import os
import subprocess
import sys
import textwrap

import pytest
from checkpoint_schedules import SingleDiskStorageSchedule

import fe_adjoint
from tests.helpers import N_STEPS, heat

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def files_under(path):
    return [name for _, _, names in os.walk(path) for name in names]


def test_files_are_written_then_removed_with_the_tape(tmp_path):
    from firedrake.adjoint import get_working_tape

    taped = heat(SingleDiskStorageSchedule(), tmp_path)
    taped.Jhat.derivative()
    # one file per step's adjoint data; the last step's outputs are the run's results,
    # held in memory for the life of the tape
    assert len(files_under(tmp_path)) == N_STEPS - 1
    assert fe_adjoint.stats()["peak_bytes"]["DISK"]["adjoint"] > 0
    get_working_tape().clear_tape()
    assert os.listdir(tmp_path) == []


def test_move_schedule_frees_each_file_once_read(tmp_path):
    taped = heat(SingleDiskStorageSchedule(move_data=True), tmp_path)
    taped.Jhat.derivative()
    assert files_under(tmp_path) == []


def test_missing_directory_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(fe_adjoint.ConfigurationError, match="does not exist"):
        heat(SingleDiskStorageSchedule(), missing)


def test_unwritable_directory_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions; use a path under a file instead
        locked = tmp_path / "a_file"
        locked.write_text("")
        match = "is a file, not a directory"
    else:
        match = "not writable|cannot create"
    with pytest.raises(fe_adjoint.ConfigurationError, match=match):
        heat(SingleDiskStorageSchedule(), locked)


def test_deleted_checkpoint_file_is_reported(tmp_path):
    taped = heat(SingleDiskStorageSchedule(), tmp_path)
    taped.Jhat.derivative()
    for root, _, names in os.walk(tmp_path):
        for name in names:
            os.remove(os.path.join(root, name))
    with pytest.raises(fe_adjoint.StorageError, match="is missing"):
        taped.Jhat.derivative()


def test_full_disk_is_reported_and_leaves_no_file(tmp_path, monkeypatch):
    import errno

    import h5py

    from fe_adjoint.checkpointing.storage import disk

    class FullFile(h5py.File):
        def create_dataset(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk.h5py, "File", FullFile)
    with pytest.raises(fe_adjoint.StorageError, match="disk is full"):
        heat(SingleDiskStorageSchedule(), tmp_path)
    assert files_under(tmp_path) == []


SCRIPT = """
import sys
from checkpoint_schedules import SingleDiskStorageSchedule
sys.path.insert(0, {repo!r})
from tests.helpers import heat
import fe_adjoint
taped = heat(SingleDiskStorageSchedule(), {disk_dir!r})
taped.Jhat.derivative()
if {fail!r}:
    raise RuntimeError("failure in the middle of the run")
"""


@pytest.mark.parametrize("fail", [False, True], ids=["normal_exit", "exception"])
def test_no_files_remain_after_the_process_ends(tmp_path, fail):
    script = SCRIPT.format(repo=REPO, disk_dir=str(tmp_path), fail=fail)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                            capture_output=True, text=True)
    assert (result.returncode != 0) == fail, result.stderr
    assert os.listdir(tmp_path) == []


def test_files_are_removed_when_an_exception_escapes_mid_forward(tmp_path):
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, {repo!r})
        from checkpoint_schedules import SingleDiskStorageSchedule
        from firedrake import *
        from firedrake.adjoint import *
        import fe_adjoint
        mesh = UnitSquareMesh(4, 4)
        V = FunctionSpace(mesh, "CG", 1)
        u = Function(V).assign(1.0)
        continue_annotation()
        fe_adjoint.enable_checkpointing(SingleDiskStorageSchedule(), disk_dir={disk_dir!r})
        for n in fe_adjoint.steps(10):
            u.interpolate(u * u)
            if n == 5:
                import os
                print("files", sum(len(f) for _, _, f in os.walk({disk_dir!r})))
                raise RuntimeError("model blew up")
    """)
    result = subprocess.run(
        [sys.executable, "-c", script.format(repo=REPO, disk_dir=str(tmp_path))],
        capture_output=True, text=True,
    )
    assert "model blew up" in result.stderr
    # steps 1-4 had adjoint data on disk when the error escaped (step 0 reads only the
    # untaped initial value, which is step-invariant)
    assert "files 4" in result.stdout
    assert os.listdir(tmp_path) == []
