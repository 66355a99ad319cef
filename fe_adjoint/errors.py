"""Exception hierarchy of fe_adjoint.

Every error names what was expected, what was found and the fix.
"""


class FeAdjointError(RuntimeError):
    """Base class of the errors fe_adjoint raises."""


class ScheduleError(FeAdjointError):
    """An action out of order, or a step count that does not match the schedule."""


class StorageError(FeAdjointError):
    """Checkpoint data that is missing, unreadable or cannot be written."""


class ConfigurationError(FeAdjointError, ValueError):
    """An invalid set-up passed to a public entry point."""
