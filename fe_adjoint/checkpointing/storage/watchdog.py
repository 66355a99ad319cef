"""Remove a checkpoint folder once the process that made it has ended, however it ended.

Started by :func:`~fe_adjoint.checkpointing.storage.folders.make_private_dir` as
``python -I watchdog.py FD PATH PID``, in a session of its own (a Ctrl-C or a signal to the
job's process group does not reach it). It waits for end-of-file on the pipe ``FD``, whose
other end only the owner holds: the owner closes it after removing the folder itself, and
the kernel closes it when the owner dies (SIGKILL, out of memory, stuck in an MPI call when
``mpiexec`` or Slurm killed it). Then the folder is removed if it is still there.
Standard library only: it must start in milliseconds and never import MPI.
"""

import os
import shutil
import signal
import sys


def main(fd: int, path: str, pid: str) -> None:
    """Wait for end-of-file on ``fd``, then remove ``path`` (owned by process ``pid``)."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # outlive the job's SIGTERM to clean up after it
    while True:
        try:
            os.read(fd, 1)
            break
        except InterruptedError:
            continue
    if os.path.isdir(path):
        files = sum(len(names) for _, _, names in os.walk(path))
        shutil.rmtree(path, ignore_errors=True)
        line = (f"fe_adjoint: process {pid} ended without removing its checkpoint folder "
                f"{path}; removed it ({files} files)")
        try:  # as fe_adjoint.termination.say (this script imports nothing of fe_adjoint)
            if os.environ.get("FE_ADJOINT_LOG"):
                with open(os.environ["FE_ADJOINT_LOG"], "a") as log:
                    log.write(line + "\n")
            else:
                print(line, file=sys.stderr, flush=True)
        except OSError:  # nobody reads the log any more
            pass


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
