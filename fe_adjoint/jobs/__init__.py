"""Batch jobs: node-local checkpoints and optimisations that a resubmitted job continues."""

from .history import OptimisationHistory
from .minimize import minimize
from .scratch import node_local_dir

__all__ = ["OptimisationHistory", "minimize", "node_local_dir"]
