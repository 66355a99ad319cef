"""Hands the Functions of freed checkpoint values out again as new values.

A replayed step writes each of its outputs into a new Function (held values must not
share one), and each checkpoint copy is a new Function too; making one costs more than
the explicit step's arithmetic (16 of 170 microseconds per value on the FWI demo's
mesh, several values a step). The step model gives the values it frees to a
:class:`ValuePool`, which hands one out again only once nothing else refers to it: its
reference count says that no held value, storage slot, form or cache still holds it. A
value handed out keeps its old entries: the caller overwrites them.

Only in serial: reference counts may differ between ranks (garbage awaiting collection), and
a new value's PETSc vector is made collectively, so under MPI every value is a new one.
"""

from __future__ import annotations

import sys


class ValuePool:
    """A few freed Functions and Cofunctions per space, ready to be written again."""

    def __init__(self, per_space: int = 4):
        self.per_space = per_space
        self._free: dict = {}  # (type, id(space)) -> freed values

    def new(self, cls, space):
        """A ``cls(space)``: a freed one nothing refers to any more, or a new one."""
        free = self._free.get((cls, id(space))) if space.comm.size == 1 else None
        while free:
            value = free.pop()
            if sys.getrefcount(value) == 2:  # ``value`` here and getrefcount's argument
                return value
        return cls(space)

    def give(self, value) -> None:
        """Offer a value its holder has let go of (it is handed out once unreferenced)."""
        from firedrake import Cofunction, Function

        if type(value) not in (Function, Cofunction) or value.function_space().comm.size > 1:
            return
        free = self._free.setdefault((type(value), id(value.function_space())), [])
        if len(free) < self.per_space:
            free.append(value)
