"""The working tape's statistics: ``fe_adjoint.stats()``, ``report()`` and ``save_report()``."""

from __future__ import annotations

import json
import os

from ..tape.session import get_session
from .stats import format_report


def stats() -> dict:
    """Counters of the working tape's checkpointing: steps run, peak bytes, time per phase."""
    return get_session().driver.stats.as_dict()


def save_report(path: str | os.PathLike) -> None:
    """Write the working tape's statistics to ``path`` as JSON (rank 0 writes).

    ``fe-adjoint report PATH`` prints it; ``StepCosts.from_report(PATH)`` plans from it.
    """
    from .. import __version__

    session = get_session()
    if session.comm.rank == 0:
        with open(path, "w") as file:
            json.dump({"fe_adjoint": __version__, "stats": stats()}, file, indent=1)
    session.comm.barrier()


def report() -> str:
    """Print and return the checkpointing report of the working tape."""
    text = format_report(stats())
    print(text)
    return text
