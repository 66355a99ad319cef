"""Private checkpoint folders: named after their owner, removed on SIGTERM, stale ones swept.

A folder is ``fe_adjoint-HOST-PID-START-XXXXXXXX`` inside ``disk_dir``: the host, the
process id and the process's start time (clock ticks since boot, from ``/proc``) tell
whether its owner still runs, so a folder left by a killed process (SIGKILL, a node
failure) is recognised later: each new folder's creation removes the stale ones of
dead processes on the same host, and ``fe-adjoint clean DIR`` lists and removes them.
A SIGTERM (Slurm's time limit, ``kill``, mpirun) removes this process's folders and then
does what the signal would have done.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading

PREFIX = "fe_adjoint-"
_LIVE: set[str] = set()  # this process's folders
_PREVIOUS: dict[int, object] = {}  # signal -> the handler before ours


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
    _LIVE.add(path)
    _handle(signal.SIGTERM)
    return path


def remove(path: str) -> None:
    """Remove a folder of this process."""
    _LIVE.discard(path)
    shutil.rmtree(path, ignore_errors=True)


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


def _handle(signum: int) -> None:
    """Install the clean-up handler for ``signum`` once (main thread only)."""
    if signum in _PREVIOUS or threading.current_thread() is not threading.main_thread():
        return
    _PREVIOUS[signum] = signal.signal(signum, _on_signal)


def _on_signal(signum, frame) -> None:
    for path in list(_LIVE):
        remove(path)
    previous = _PREVIOUS.pop(signum, signal.SIG_DFL)
    signal.signal(signum, previous)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signum)  # what the signal would have done
