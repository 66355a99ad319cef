"""A scalar recurrence run through the real StepDriver, with no Firedrake: the driver's test bed.

Step n reads u_n, J_n and m and writes u_{n+1} = u_n**2/2 + m and
J_{n+1} = J_n + u_{n+1}**2. Keys are tuples; a read of a value that is not
held raises, so a driver that frees too early fails loudly.
"""

from fe_adjoint.checkpointing.classify import BlockRecord, IndexedKeys, TapeIndex
from fe_adjoint.checkpointing.storage.base import ValueCodec


class FloatCodec(ValueCodec):
    def copy(self, value):
        return value

    def nbytes(self, value):
        return 8

    def to_array(self, value):
        return None

    def template(self, value):
        return None

    def from_array(self, template, array):
        raise AssertionError("floats are never written as arrays")


class MissingValue(AssertionError):
    pass


class RecurrenceModel(IndexedKeys):
    def __init__(self, m, u0):
        self.index = TapeIndex()
        self.live = {"u": u0, "J": 0.0, "m": m}  # what the user's script holds while taping
        self.current = {"m": m, ("u", 0): u0, ("J", 0): 0.0}  # values held for the tape
        self.adjoint = {}
        self.forward_runs = []
        self.reverse_runs = []

    def nbytes(self, values):
        return 8 * len(values)

    # taping, as a user's script would run it: live values, each captured as it is used
    def tape_step(self, n):
        self.index.add_step([
            BlockRecord(
                reads=(("u", n), ("J", n), "m"),
                writes=(("u", n + 1), ("J", n + 1)),
                adjoint_reads=(("u", n), ("u", n + 1)),
            )
        ])
        live = self.live
        self.current.update({("u", n): live["u"], ("J", n): live["J"], "m": live["m"]})
        live["u"] = 0.5 * live["u"] ** 2 + live["m"]
        live["J"] = live["J"] + live["u"] ** 2
        self.current.update({("u", n + 1): live["u"], ("J", n + 1): live["J"]})

    def _get(self, key, n, phase):
        if key not in self.current:
            raise MissingValue(f"{phase} of step {n} read {key}, which is not held")
        return self.current[key]

    def _advance(self, n):
        u = self._get(("u", n), n, "forward")
        J = self._get(("J", n), n, "forward")
        m = self._get("m", n, "forward")
        u1 = 0.5 * u * u + m
        self.current[("u", n + 1)] = u1
        self.current[("J", n + 1)] = J + u1 * u1

    # StepModel
    def values(self, keys, step):
        return {key: self._get(key, step, "store") for key in keys}

    def load(self, values):
        self.current.update(values)

    def free(self, key):
        self.current.pop(key, None)

    def run_forward(self, n):
        self.forward_runs.append(n)
        self._advance(n)

    def run_reverse(self, n, markings):
        self.reverse_runs.append(n)
        u = self._get(("u", n), n, "adjoint")
        u1 = self._get(("u", n + 1), n, "adjoint")
        a = self.adjoint
        aJ1 = a.pop(("J", n + 1), 0.0)
        au1 = a.pop(("u", n + 1), 0.0) + 2.0 * u1 * aJ1
        a[("J", n)] = a.get(("J", n), 0.0) + aJ1
        a[("u", n)] = a.get(("u", n), 0.0) + u * au1
        a["m"] = a.get("m", 0.0) + au1


def exact(m, u0, n):
    """J and dJ/dm, dJ/du0 by forward-mode differentiation."""
    u, du_dm, du_du0 = u0, 0.0, 1.0
    J, dJ_dm, dJ_du0 = 0.0, 0.0, 0.0
    for _ in range(n):
        u, du_dm, du_du0 = 0.5 * u * u + m, u * du_dm + 1.0, u * du_du0
        J, dJ_dm, dJ_du0 = J + u * u, dJ_dm + 2 * u * du_dm, dJ_du0 + 2 * u * du_du0
    return J, dJ_dm, dJ_du0
