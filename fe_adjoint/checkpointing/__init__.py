"""Checkpointed runs of a taped model.

The schedule driver, the step model, the classification of per-step data
(:mod:`~fe_adjoint.checkpointing.classify`) and storage.
"""
