"""Where a batch job's checkpoints go: node-local scratch when the job has it."""

from __future__ import annotations

import os
import tempfile


def node_local_dir(fallback: str | os.PathLike | None = None) -> str:
    """The folder for checkpoint files: node-local scratch when there is one.

    In order: ``$SLURM_TMPDIR`` (set per job on many Slurm clusters), ``$TMPDIR`` (Slurm's
    job_container/tmpfs, PBS and most batch systems point it at the node's local disk),
    ``fallback`` (a folder of your own, say on a parallel file system), the system's
    temporary folder. Only an existing folder is taken. Each MPI process writes in a
    private folder inside it, so a folder that is local to each node is fine.
    """
    for candidate in (os.environ.get("SLURM_TMPDIR"), os.environ.get("TMPDIR"), fallback):
        if candidate and os.path.isdir(candidate):
            return os.path.abspath(os.fspath(candidate))
    return tempfile.gettempdir()
