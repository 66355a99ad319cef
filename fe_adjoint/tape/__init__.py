"""fe_adjoint on a pyadjoint tape.

The session, the hooks into pyadjoint, coarse step blocks and what each taped
operation reads (:mod:`~fe_adjoint.tape.reads`).
"""

from .session import get_session

__all__ = ["get_session"]
