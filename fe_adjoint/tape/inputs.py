"""Values read from outside the tape: captured once per distinct value, held for its life.

A value is *captured* when a block reads it and no block of the tape wrote it (it was
made before taping, changed outside the tape, or belongs to another tape's
BlockVariable). Changes are told by PyOP2 data versions; a Constant, which has none, by
its values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Captured:
    """A value read from outside the tape: the ``serial``-th distinct value of one object."""

    name: str
    ident: int
    serial: int

    def __str__(self):
        return f"{self.name} (captured value {self.serial})"


def fingerprint(obj) -> Any:
    """What tells whether ``obj`` changed: a PyOP2 data version, a Constant's values, or None.

    None: the object has no data of its own (a float, a mesh, a boundary condition) and is
    immutable for the purpose of the tape.
    """
    dat = getattr(obj, "dat", None)
    if dat is None:
        return None
    version = getattr(dat, "dat_version", None)
    if version is not None:
        return ("version", version)
    return ("values", dat.data_ro.tobytes())  # bytes: compared in a tenth of array_equal's time


def same_fingerprint(a, b) -> bool:
    """Whether two fingerprints tell the same value."""
    if a is None or b is None:
        return a is b
    return a == b


def same_values(obj, value) -> bool:
    """Whether live ``obj`` holds the values of ``value`` (same type and space)."""
    a, b = getattr(obj, "dat", None), getattr(value, "dat", None)
    if a is None or b is None:
        return obj is value or obj == value
    return np.array_equal(a.data_ro, b.data_ro)


def copy_of(obj):
    """An independent copy of a live value (Functions, Cofunctions, Constants; others shared)."""
    from firedrake import Cofunction, Constant, Function

    if isinstance(obj, (Function, Cofunction)):
        return obj.copy(deepcopy=True)
    if isinstance(obj, Constant):
        return obj._ad_copy()
    return obj


def assign_into(obj, value) -> None:
    """Make live ``obj`` hold ``value`` (no annotation)."""
    from firedrake import Constant
    from pyadjoint.tape import stop_annotating

    with stop_annotating():
        if isinstance(obj, Constant):
            obj.assign(value)
        else:
            with value.dat.vec_ro as source, obj.dat.vec_wo as target:
                source.copy(target)


class Inputs:
    """Values read from outside the tape, held for the life of the tape."""

    def __init__(self):
        self.values: dict[Any, Any] = {}
        self._last: dict[int, tuple] = {}  # id(object) -> (key, fingerprint) of its last capture
        self._by_bv: dict[Any, list] = {}  # BlockVariable -> its captured keys
        self._serials: dict[int, int] = {}  # id(object) -> captures so far
        self.in_place: set = set()  # keys whose live objects hold their values (this pass)

    def __contains__(self, key) -> bool:
        return key in self.values

    def capture(self, obj, bv=None):
        """The key of ``obj``'s current value, copying it if it was not captured yet.

        ``bv``: the BlockVariable the value is read through (a dependency), if any; its first
        capture is keyed by the BlockVariable itself.
        """
        fp = fingerprint(obj)
        last = self._last.get(id(obj))
        if last is not None and same_fingerprint(last[1], fp):
            return last[0]
        serial = self._serials[id(obj)] = self._serials.get(id(obj), -1) + 1
        keys = self._by_bv.setdefault(bv, []) if bv is not None else None
        if keys == []:
            key = bv
            checkpoint = bv._checkpoint
            value = checkpoint if checkpoint is not None and is_plain(checkpoint) \
                and same_values(obj, checkpoint) else _checkpoint_of(obj)
        else:
            key = Captured(object_name(obj), id(obj), serial)
            value = copy_of(obj) if bv is None else _checkpoint_of(obj)
        if keys is not None:
            keys.append(key)
        self.values[key] = value
        self._last[id(obj)] = (key, fp)
        return key

    def keys_of(self, bv) -> list:
        """The captured keys read through BlockVariable ``bv``."""
        return self._by_bv.get(bv, [])

    def set_control(self, bv, value) -> None:
        """Make ``value`` the value of every capture read through control ``bv``."""
        for key in self.keys_of(bv):
            self.values[key] = value

    def nbytes(self, codec) -> int:
        return sum(codec.nbytes(v) for v in self.values.values() if v is not None)

    def clear(self) -> None:
        self.values.clear()
        self._last.clear()
        self._by_bv.clear()
        self._serials.clear()


def _checkpoint_of(obj):
    """A new checkpoint of ``obj`` in the form its BlockVariable keeps (a mesh: coordinates)."""
    from pyadjoint.tape import stop_annotating

    with stop_annotating():
        return obj._ad_create_checkpoint()


def is_plain(checkpoint) -> bool:
    """Whether a checkpoint is a value (not an indirection such as a delegated checkpoint)."""
    return not isinstance(checkpoint, _checkpoint_base())


@cache
def _checkpoint_base():
    from firedrake.adjoint_utils.checkpointing import CheckpointBase

    return CheckpointBase


def object_name(obj) -> str:
    """A readable name of a live object for messages."""
    name = getattr(obj, "name", None)
    name = name() if callable(name) else name
    return f"{type(obj).__name__} {name or obj!s}"




def control_value_problem(bv) -> str | None:
    """What is wrong with the value ``Jhat(m)`` gave control ``bv`` (in its checkpoint), or None.

    A Function must be in the control's own function space and every value must be
    finite; the finiteness check is collective over the control's communicator, so every
    rank gives the same answer.
    """
    value, control = bv.checkpoint, bv.output
    if hasattr(control, "function_space"):
        space = control.function_space()
        if not hasattr(value, "function_space") or value.function_space() != space:
            where = value.function_space() if hasattr(value, "function_space") else type(value)
            return f"the value is in {where}, the control in {space}"
        data = value.dat.data_ro
        finite = all(np.isfinite(part).all() for part in (data if isinstance(data, tuple)
                                                          else (data,)))
        comm = control.function_space().mesh().comm
        finite = comm.allreduce(finite, op=_logical_and())
    elif hasattr(value, "dat"):  # a Constant
        finite = bool(np.isfinite(value.dat.data_ro).all())
    else:
        finite = math.isfinite(float(value))
    return None if finite else "the value is not finite (NaN or infinity)"


def _logical_and():
    from mpi4py import MPI

    return MPI.LAND
