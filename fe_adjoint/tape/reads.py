"""What every taped operation reads, captured when it is taped.

A replay must read exactly what the taped run read. pyadjoint records a block's
*dependencies* (BlockVariables), but a Firedrake block also reads objects it does
not list -- the Constants of its forms (a time ``t``), the coefficients of a
boundary-condition expression -- and a dependency's checkpoint can be stale (a
BlockVariable shared with another tape, an object changed outside the tape). So
fe_adjoint looks at every block as it is added to the tape, *before* it runs (the
moment its inputs hold the values it reads), and writes a :class:`ReadPlan`:

* a value produced by an earlier block of this tape is read through that block's
  BlockVariable, after checking that the live object still holds it (PyOP2 data
  versions; Constants by value). A Function changed outside the tape since is
  refused with an error naming it and the fix;
* any other value -- created before taping, or changed outside the tape (a
  Constant), or a dependency from another tape -- is **captured**: copied now,
  once per distinct value, and held for the life of the tape in :class:`Inputs`.

Before a block runs (replay, adjoint, tangent), :meth:`ReadPlan.load` puts every
value back where the block reads it: captured dependencies into their
BlockVariable's checkpoint, hidden reads into the live object. :class:`LiveState`
restores those objects afterwards, so a replay never changes what the user's
script sees.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..steps.rules import copies_function
from .inputs import (
    Inputs,
    assign_into,
    copy_of,
    fingerprint,
    is_plain,
    object_name,
    same_fingerprint,
    same_values,
)


@dataclass
class ReadPlan:
    """What one block reads and where each value goes before it runs.

    ``reads``: the keys (BlockVariables or :class:`Captured`) the block's forward reads.
    ``dep_loads``: ``(BlockVariable, key)`` pairs -- a dependency whose value is a captured
    input, put into its checkpoint. ``live_loads``: ``(object, key)`` pairs -- an object
    the block reads live, assigned the key's value.
    """

    reads: tuple
    dep_loads: tuple
    live_loads: tuple

    def load(self, inputs: Inputs, held) -> None:
        """Put the values in place; ``held(key)`` is the value of a tape key, or None."""
        for bv, key in self.dep_loads:
            bv._checkpoint = None if key in inputs.in_place else inputs.values[key]
        for obj, key in self.live_loads:
            value = inputs.values.get(key)
            if value is None:
                value = held(key)
            if value is not None and not _holds_constant(obj, value):
                assign_into(obj, value)


def _holds_constant(obj, value) -> bool:
    """Whether Constant ``obj`` already holds ``value``.

    Assigning one costs a quarter of a millisecond, and a replayed step loads each of its
    Constants before every block.
    """
    from firedrake import Constant

    return isinstance(obj, Constant) and same_values(obj, value)


class ReadTracker:
    """Writes the :class:`ReadPlan` of every block taped on one tape, and captures inputs."""

    def __init__(self):
        self.inputs = Inputs()
        self.plans: dict[int, ReadPlan] = {}  # id(block) -> plan
        self.produced: set = set()  # BlockVariables written by this tape's blocks
        self._fingerprints: dict = {}  # produced BlockVariable -> fingerprint when written
        self._latest: dict[int, Any] = {}  # id(object) -> its newest produced BlockVariable
        self._pending = None  # the block planned last, and its dependencies found changed
        self._suspects: list = []
        self._superseded: list = []  # see take_superseded

    def block_added(self, block) -> None:
        """Plan ``block``, just created.

        Firedrake tapes most operations before running them, assembly after.
        """
        self.settle()
        self._pending = block
        deps, dep_loads = [], []
        for bv in block.get_dependencies():
            key = self._resolve(bv.output, bv, block)
            deps.append(key)
            if key is not bv or key in self.inputs:
                dep_loads.append((bv, key))
        live = []
        for obj in hidden_reads(block):
            live.append((obj, self._resolve(obj, None, block)))
        reads = tuple(dict.fromkeys((*deps, *(key for _, key in live))))
        self.plans[id(block)] = ReadPlan(reads, tuple(dep_loads), tuple(live))

    def plan_dependencies(self, block) -> None:
        """Plan an already taped ``block`` as reading its dependencies only (a plain tape)."""
        self.produced.update(block.get_outputs())
        self.plans[id(block)] = ReadPlan(tuple(block.get_dependencies()), (), ())

    def output_added(self, block, bv) -> bool:
        """Note the value ``block`` has just written to ``bv`` (before pyadjoint saves it).

        Returns whether pyadjoint should copy the value now: a copy (``u_old.assign(u)``,
        ``u.copy(deepcopy=True)``) of a value the tape holds shares that value instead.
        """
        self.produced.add(bv)
        older = self._latest.get(id(bv.output))
        if older is not None:  # only an object's newest variable is read from now on
            self._fingerprints.pop(older, None)
            self._superseded.append(older)
        self._latest[id(bv.output)] = bv
        fp = fingerprint(bv.output)
        self._fingerprints[bv] = (fp, None)  # the checkpoint is noted in settle()
        if self._suspects:
            self._suspects = [(old, block_, seen) for old, block_, seen in self._suspects
                              if old.output is not bv.output or not same_fingerprint(seen, fp)]
        return not self._share_source(block, bv)

    def _share_source(self, block, bv) -> bool:
        """Give copy ``bv`` its source's held value, if ``block`` copies one; whether it did."""
        if not copies_function(block, bv):
            return False
        source = block.get_dependencies()[0]
        if not _is_held_value(source._checkpoint) or source not in self.produced \
                or not self.still_holds(source):
            return False
        bv._checkpoint = source._checkpoint
        return True

    def take_superseded(self) -> list:
        """The variables whose objects were written again since the last call."""
        found, self._superseded = self._superseded, []
        return found

    def settle(self) -> None:
        """Finish the last block planned, once it has run and been taped.

        A copy's delegated checkpoint (set by Firedrake after the output is added) gets a
        value of its own.
        """
        block, self._pending = self._pending, None
        if block is not None:
            for bv in block.get_outputs():
                _resolve_delegation(bv)
                fp, _ = self._fingerprints.get(bv, (None, None))
                if bv in self._fingerprints:
                    self._fingerprints[bv] = (fp, _weak(bv._checkpoint))

    def check_step(self) -> None:
        """At the end of a taped step: every dependency found changed was changed by the tape.

        Firedrake tapes some operations after they ran (``u.interpolate(u * u)``,
        ``u.sub(0) += v``): a dependency then already holds the result, which a block of
        the same operation writes (the assembly, the merge into the parent Function).
        Any other change was made outside the tape.
        """
        self.settle()
        if self._suspects:
            bv, block, _ = self._suspects[0]
            self._suspects = []
            raise _changed_outside(bv.output, block)

    def _resolve(self, obj, bv, block):
        """The key through which ``block`` reads live object ``obj`` (via dependency ``bv``)."""
        current = bv if bv is not None else _block_variable(obj)
        if current is not None and current in self.produced:
            if self.still_holds(current):
                if current._checkpoint is None:
                    current.save_output()
                return current
            if fingerprint(obj)[0] == "values":
                return self.inputs.capture(obj)  # a Constant re-set outside the tape
            if bv is None:
                raise _changed_outside(obj, block)
            self._suspects.append((bv, block, fingerprint(obj)))  # see check_step
            return bv
        if bv is not None and bv._checkpoint is None and fingerprint(obj) is None:
            return bv  # an immutable value (a float boundary value): its object is its value
        if bv is not None and _is_reference(bv._checkpoint):
            return bv  # a boundary condition: its checkpoint refers to its value's variable
        return self.inputs.capture(obj, bv)

    def still_holds(self, bv) -> bool:
        """Whether produced ``bv``'s live object still holds the value it was given.

        Versions first; where the version moved (a read-write access), the values are
        compared with the checkpoint taken when the value was written, if still held.
        """
        old, written = self._fingerprints.get(bv, (None, None))
        now = fingerprint(bv.output)
        if same_fingerprint(old, now):
            return True
        written = written() if written is not None else None
        if written is not None and bv._checkpoint is written and is_plain(written) \
                and same_values(bv.output, written):
            self._fingerprints[bv] = (now, _weak(written))  # touched, not changed
            return True
        return False

    def clear(self) -> None:
        self.inputs.clear()
        self.plans.clear()
        self.produced.clear()
        self._fingerprints.clear()
        self._latest.clear()
        self._pending, self._suspects, self._superseded = None, [], []
        _CONSTANTS.clear()  # it holds forms, and so their coefficients


def _changed_outside(obj, block) -> ConfigurationError:
    return ConfigurationError(
        f"{object_name(obj)} was changed outside the tape (not by a taped operation) after it was "
        f"last written on the tape, and {block} reads it: a replay could not reproduce that "
        "change. Change it with a taped operation (assign, interpolate, project while "
        "annotating), or before taping starts"
    )


def _weak(value):
    try:
        return weakref.ref(value)
    except TypeError:  # a float or None: never the same object as a re-saved checkpoint
        return None


def _is_reference(checkpoint) -> bool:
    """Whether a checkpoint is another BlockVariable (a DirichletBC's value)."""
    from pyadjoint.block_variable import BlockVariable

    return isinstance(checkpoint, BlockVariable)


def _block_variable(obj):
    return getattr(obj, "block_variable", None)


def _resolve_delegation(bv) -> None:
    """Give ``u_old.assign(u)`` a value of its own instead of a reference to ``u``'s variable.

    Firedrake checkpoints a copy by delegating to the source's BlockVariable, whose value
    may be freed or replaced before the copy is read. The source's value is shared (no
    copy) when it is held, else the copy's live value (it has just been written) is copied.
    """
    checkpoint = bv._checkpoint
    if checkpoint is None or is_plain(checkpoint):
        return
    other = getattr(checkpoint, "other", None)
    source = None if other is None else other._checkpoint
    bv._checkpoint = source if _is_held_value(source) else copy_of(bv.output)


def _is_held_value(checkpoint) -> bool:
    """Whether a checkpoint is a value of its own that another variable can share."""
    return checkpoint is not None and is_plain(checkpoint) \
        and not isinstance(checkpoint, (int, float))


def hidden_reads(block) -> tuple:
    """Objects ``block`` reads live beyond its dependencies, in a stable order.

    The Constants of its forms and expressions, the Constants and Functions of its
    boundary conditions' values (a boundary condition given a Function or Constant also
    has it as a dependency, but Firedrake's solvers read the live object), and the
    unknown of a linear solve, whose value before the solve is the solver's initial guess.
    """
    names = _firedrake_names()
    found = {}
    if getattr(block, "linear", False) and hasattr(block, "func"):
        found[id(block.func)] = block.func
    for attribute in _EXPRESSION_ATTRIBUTES:
        expression = getattr(block, attribute, None)
        if isinstance(expression, names.expressions):
            for constant in constants_of(expression):
                found.setdefault(id(constant), constant)
    for bc in getattr(block, "bcs", ()) or ():
        if not isinstance(bc, names.DirichletBC):
            continue
        value = bc._original_arg
        if isinstance(value, (names.Function, names.Constant)):
            found.setdefault(id(value), value)
        elif hasattr(value, "ufl_shape"):
            for obj in (*names.extract_type(value, names.Constant),
                        *names.extract_coefficients(value)):
                found.setdefault(id(obj), obj)
    return tuple(found.values())


_EXPRESSION_ATTRIBUTES = ("lhs", "rhs", "form", "expr", "problem_J")  # of Firedrake's blocks


@cache
def _firedrake_names() -> SimpleNamespace:
    """What :func:`hidden_reads` looks for, imported once (not per taped block)."""
    import ufl
    from firedrake import Constant, DirichletBC
    from firedrake.function import Function
    from ufl.algorithms.analysis import extract_coefficients, extract_type

    return SimpleNamespace(Constant=Constant, DirichletBC=DirichletBC, Function=Function,
                           extract_type=extract_type, extract_coefficients=extract_coefficients,
                           expressions=(ufl.form.BaseForm, ufl.core.expr.Expr))


def constants_of(expression) -> tuple:
    """The Constants in a form or expression; a solver's form, taped every step, once."""
    held = _CONSTANTS.get(id(expression))
    if held is not None and held[0] is expression:
        return held[1]
    names = _firedrake_names()
    found = tuple(names.extract_type(expression, names.Constant))
    if len(_CONSTANTS) > 256:
        _CONSTANTS.clear()
    _CONSTANTS[id(expression)] = (expression, found)
    return found


_CONSTANTS: dict = {}  # id(form or expression) -> (it, its Constants), newest taped


class LiveState:
    """The live objects a run may overwrite, restored afterwards.

    The objects read live and the captured dependencies (their checkpoints, and their live
    objects: some of Firedrake's block methods write a dependency's value into it, the
    control among them).
    """

    def __init__(self, plans, inputs: Inputs):
        from firedrake import Cofunction, Constant, Function
        from firedrake.mesh import MeshGeometry

        self._inputs = inputs
        self._objects = {}
        self._bvs = {}
        self._meshes = {}  # id(BlockVariable) -> (its captured mesh's variable, key)
        for plan in plans:
            for obj, _ in plan.live_loads:
                self._objects.setdefault(id(obj), obj)
            for bv, key in plan.dep_loads:
                self._bvs.setdefault(id(bv), bv)
                if isinstance(bv.output, (Function, Cofunction, Constant)):
                    self._objects.setdefault(id(bv.output), bv.output)
                elif isinstance(bv.output, MeshGeometry):
                    self._meshes.setdefault(id(bv), (bv, key))

    def __enter__(self):
        self._values = [(obj, copy_of(obj)) for obj in self._objects.values()]
        self._checkpoints = [(bv, bv._checkpoint) for bv in self._bvs.values()]
        self._inputs.in_place = self._place_meshes()
        return self

    def __exit__(self, *exc):
        self._inputs.in_place = set()
        for obj, value in self._values:
            assign_into(obj, value)
        for bv, checkpoint in self._checkpoints:
            bv._checkpoint = checkpoint
        self._values = self._checkpoints = None
        return False

    def _place_meshes(self) -> set:
        """Give the captured meshes their taped coordinates; their keys (read in place).

        pyadjoint would re-assign a mesh's coordinates from its checkpoint at every read
        (a fifth of a replayed wave step) and, where the script moved the mesh after
        taping, leave it moved back. Here a mesh gets its taped coordinates once, if it
        does not hold them (on every rank together: an assignment marks halos for
        exchange), is read in place during the pass, and gets the script's coordinates
        back when the pass ends.
        """
        from mpi4py import MPI

        for bv, key in self._meshes.values():
            coordinates, taped = bv.output.coordinates, self._inputs.values[key]
            same = np.array_equal(coordinates.dat.data_ro, taped.dat.data_ro)
            if not bv.output.comm.allreduce(bool(same), op=MPI.LAND):
                self._values.append((coordinates, copy_of(coordinates)))
                assign_into(coordinates, taped)
        return {key for _, key in self._meshes.values()}
