"""Private checkpoint folders: named after their owner, removed on SIGTERM, stale ones swept.

A folder is ``fe_adjoint-HOST-PID-START-XXXXXXXX`` inside ``disk_dir``: the host, the
process id and the process's start time (clock ticks since boot, from ``/proc``) tell
whether its owner still runs, so a folder left by a killed process (SIGKILL, a node
failure) is recognised later: each new folder's creation removes the stale ones of
dead processes on the same host, and ``fe-adjoint clean DIR`` lists and removes them.
A SIGTERM (Slurm's time limit, ``kill``, mpirun) removes this process's folders through
:mod:`fe_adjoint.termination`, and a watchdog process per folder removes it once its owner
has ended in any other way (:mod:`.watchdog`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile

from ... import termination

PREFIX = "fe_adjoint-"
_LIVE: dict[str, tuple[int, subprocess.Popen]] = {}  # this process's folders: their watchdogs
_WATCHDOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "watchdog.py")


def _start_ticks(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _host() -> str:
    return socket.gethostname().replace("-", "_")


def make_private_dir(disk_dir: str) -> str:
    """Create this process's folder in ``disk_dir`` (after sweeping stale ones)."""
    sweep(disk_dir)
    tag = f"{PREFIX}{_host()}-{os.getpid()}-{_start_ticks(os.getpid())}-"
    path = tempfile.mkdtemp(prefix=tag, dir=disk_dir)
    _LIVE[path] = _watch(path)
    termination.on_termination("checkpoint folders", _remove_all)
    return path


def _watch(path: str) -> tuple[int, subprocess.Popen]:
    """Start the watchdog of ``path``; return the pipe end that keeps it waiting, and it."""
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", _WATCHDOG, str(read_end), path, str(os.getpid())],
            pass_fds=(read_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            start_new_session=True)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return write_end, process


def remove(path: str) -> None:
    """Remove a folder (of this process, or a stale one), then let its watchdog go."""
    shutil.rmtree(path, ignore_errors=True)
    watched = _LIVE.pop(path, None)
    if watched is not None:
        write_end, process = watched
        os.close(write_end)
        process.wait()  # it finds the folder gone and exits at once


def _remove_all() -> str | None:
    """Remove every folder of this process (on SIGTERM); say what was removed."""
    removed = []
    for path in list(_LIVE):
        files = sum(len(names) for _, _, names in os.walk(path))
        remove(path)
        removed.append(f"{path} ({files} files)")
    return f"removed checkpoint folder {', '.join(removed)}" if removed else None


def owner(name: str) -> tuple[str, int, str] | None:
    """``(host, pid, start)`` of a folder name, or None if fe_adjoint did not make it."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX):].rsplit("-", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def stale(disk_dir: str) -> tuple[list[str], list[str]]:
    """Folders in ``disk_dir`` whose owner is dead (this host), and those of other hosts."""
    dead, elsewhere = [], []
    try:
        names = sorted(os.listdir(disk_dir))
    except OSError:
        return dead, elsewhere
    for name in names:
        who = owner(name)
        path = os.path.join(disk_dir, name)
        if who is None or not os.path.isdir(path) or path in _LIVE:
            continue
        host, pid, start = who
        if host != _host():
            elsewhere.append(path)
        elif _start_ticks(pid) != start:  # gone, or the pid now belongs to another process
            dead.append(path)
    return dead, elsewhere


def sweep(disk_dir: str) -> list[str]:
    """Remove the folders of dead processes of this host in ``disk_dir``; return them."""
    dead, _ = stale(disk_dir)
    for path in dead:
        shutil.rmtree(path, ignore_errors=True)
    return dead
