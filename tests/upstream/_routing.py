"""Which mode the vendored tests run in: ``FE_ADJOINT_UPSTREAM=plain|fe`` (default ``fe``)."""

import os

MODES = ("plain", "fe")
MODE = os.environ.get("FE_ADJOINT_UPSTREAM", "fe").strip().lower()
ROUTED_TO_FE_ADJOINT = MODE == "fe"

# fe mode: the disk_dir given to fe_adjoint.enable_checkpointing (set by conftest.py).
FE_DISK_DIR = None


def fe_adjoint_files():
    """fe mode: every file and folder now under FE_DISK_DIR (fe_adjoint's checkpoint storage)."""
    return {os.path.join(root, name)
            for root, folders, names in os.walk(FE_DISK_DIR) for name in (*folders, *names)}
