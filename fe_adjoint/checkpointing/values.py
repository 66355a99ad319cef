"""How checkpoint values of a pyadjoint/Firedrake tape are copied, sized and serialised."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def _is_function(value: Any) -> bool:
    from firedrake import Cofunction, Function

    return isinstance(value, (Function, Cofunction))


class FiredrakeValueCodec:
    """The :class:`~fe_adjoint.storage.base.ValueCodec` for Firedrake and pyadjoint values.

    Functions and Cofunctions are array-backed (copied into a value from ``pool``, a
    :class:`~fe_adjoint.checkpointing.pool.ValuePool`, or a new one; written as their
    local PETSc vector); Constants are copied; floats and meshes are immutable and shared.
    """

    def __init__(self, pool=None):
        self.pool = pool
        self._nbytes: dict = {}  # id(space) -> (space, bytes of one value's local vector)

    def copy(self, value: Any) -> Any:
        if isinstance(value, numbers.Number) or value is None:
            return value
        if _is_function(value):
            if self.pool is None:
                return value.copy(deepcopy=True)
            copied = self.pool.new(type(value), value.function_space())
            with value.dat.vec_ro as source, copied.dat.vec_wo as target:
                source.copy(target)
            return copied
        if hasattr(value, "dat") and hasattr(value, "_ad_copy"):  # Constant
            return value._ad_copy()
        return value

    def nbytes(self, value: Any) -> int:
        if isinstance(value, numbers.Number):
            return 8
        if _is_function(value):
            space = value.function_space()
            held = self._nbytes.get(id(space))  # by identity: hashing a space costs more
            if held is None or held[0] is not space:
                with value.dat.vec_ro as vec:
                    held = self._nbytes[id(space)] = (space, vec.array_r.nbytes)
            return held[1]
        dat = getattr(value, "dat", None)  # a Constant
        return 0 if dat is None else np.asarray(dat.data_ro).nbytes

    def to_array(self, value: Any) -> np.ndarray | None:
        if not _is_function(value):
            return None
        with value.dat.vec_ro as vec:
            return vec.array_r.copy()

    def template(self, value: Any) -> Any:
        return (type(value), value.function_space())

    def from_array(self, template: Any, array: np.ndarray) -> Any:
        cls, space = template
        value = cls(space)
        with value.dat.vec_wo as vec:
            vec.array[:] = array
        return value
