"""``minimize`` that a batch job can continue: every answer the optimiser got is recorded.

With ``history=folder``, each value of J and of its gradient is written to the folder as
soon as it is computed (:class:`~fe_adjoint.jobs.history.OptimisationHistory`). A job that
is ended (a time limit, a node failure) and run again starts the same optimiser from the
same initial control and answers its calls from the folder, without running anything, for
as long as they ask at the recorded controls; from the first call the folder has not
seen, it computes again. Because SciPy's optimisers are deterministic, the resumed job
passes through the very iterates of an uninterrupted one and ends at the same control.
"""

from __future__ import annotations

import warnings

import numpy as np
from mpi4py import MPI
from pyadjoint import minimize as pyadjoint_minimize
from pyadjoint.optimization.optimization import SciPyConvergenceError
from pyadjoint.reduced_functional_numpy import ReducedFunctionalNumPy

from .. import termination
from ..errors import ConfigurationError
from .history import OptimisationHistory
from .partition import REPRODUCIBLE_HINT, partition_fingerprint, warn_if_not_reproducible

_HESSIAN_METHODS = ("Newton-CG", "trust-ncg", "trust-krylov", "trust-exact", "dogleg")


class RecordedReducedFunctionalNumPy(ReducedFunctionalNumPy):
    """pyadjoint's NumPy view of a reduced functional whose calls go through a history."""

    def __init__(self, Jhat, history: OptimisationHistory, method: str, verbose: bool = True):
        super().__init__(Jhat)
        self.history = history
        self.method = method
        self.verbose = verbose
        self._calls = 0
        self._x = None  # the control of the latest J call: where dJ is asked for
        self._taped_at = None  # the control the tape's forward last ran at, if known
        self.partition = partition_fingerprint(Jhat.controls, history.comm or MPI.COMM_SELF)

    def __call__(self, m_array):
        x = np.array(m_array, dtype=float)
        if self._calls == 0:
            self.history.start(self.method, x.size, self.partition)
        self._x = x
        value = self._answer("J", x, lambda: super(RecordedReducedFunctionalNumPy,
                                                   self).__call__(m_array))
        if self._calls == 1 and self.history.replayed:
            self._check_first(float(value))
        return float(value) if np.ndim(value) == 0 else value

    def derivative(self, adj_input=1.0, apply_riesz=True):
        x = self._x

        def run():
            if x is not None and (self._taped_at is None or not np.array_equal(self._taped_at, x)):
                super(RecordedReducedFunctionalNumPy, self).__call__(x)  # the tape is elsewhere
                self._taped_at = x
            return super(RecordedReducedFunctionalNumPy, self).derivative(
                adj_input=adj_input, apply_riesz=apply_riesz)

        return self._answer("dJ", x, run)

    def _check_first(self, recorded: float) -> None:
        """The history's J at the initial control against this tape's (another problem?)."""
        taped = float(self.rf.functional)
        if abs(recorded - taped) > 1e-8 * max(abs(taped), abs(recorded)):
            raise ConfigurationError(
                f"the optimisation history {self.history.path} belongs to another run: J at "
                f"the initial control was {recorded!r} there and is {taped!r} on this tape "
                "(another problem or parameter); pass a new folder as history= (or remove "
                "this one) to start afresh"
            )
        if recorded != taped and self.history.writer:
            warnings.warn(
                f"fe_adjoint: J at the initial control is {taped!r} on this tape and was "
                f"{recorded!r} in the job that wrote {self.history.path}: this run does not "
                "compute the same bits, so the continued optimisation parts from an "
                "uninterrupted one by round-off (more where it is ill-conditioned). Under "
                f"mpiexec {REPRODUCIBLE_HINT}",
                stacklevel=4,
            )

    def _answer(self, kind: str, x, run):
        recorded = self.history.answer(self._calls, kind, x)
        self._calls += 1
        if recorded is not None:
            return recorded
        value = run()
        if kind == "J":
            self._taped_at = x
        self.history.record_call(kind, x, value)
        return value

    def iteration_callback(self, user_callback=None):
        """A SciPy ``callback(xk)`` that records each completed iteration, then calls yours."""
        seen = [0]

        def callback(xk, *args):
            seen[0] += 1
            if seen[0] > len(self.history.iterations):
                J, gradient = self._latest_at(np.asarray(xk))
                entry = self.history.record_iteration(np.asarray(xk), J, gradient)
                replay = "" if self._calls > self.history.replayed else " (from the history)"
                if self.verbose and self.history.writer:
                    print(f"fe_adjoint: iteration {entry['iteration']}: J = {J:.12e}, "
                          f"|dJ| = {gradient:.6e}, {entry['evaluations']} evaluations"
                          f"{replay}", flush=True)
            if user_callback is not None:
                user_callback(xk, *args)

        return callback

    def _latest_at(self, x: np.ndarray) -> tuple[float, float]:
        """J and the gradient's norm at ``x``, from the latest calls made there."""
        found = {}
        for kind, at, value in reversed(self.history.calls[:self._calls]):
            if kind not in found and np.array_equal(at, x):
                found[kind] = value
        J = float(found["J"]) if "J" in found else float("nan")
        norm = float(np.linalg.norm(found["dJ"])) if "dJ" in found else float("nan")
        return J, norm


def minimize(Jhat, method: str = "L-BFGS-B", scale: float = 1.0, *, history=None,
             verbose: bool = True, **kwargs):
    """Minimise ``Jhat`` as :func:`firedrake.adjoint.minimize` does; ``history=`` resumes.

    Parameters
    ----------
    Jhat
        A ``ReducedFunctional`` (fe_adjoint's checkpointing or plain firedrake.adjoint).
    method, scale, kwargs
        As for pyadjoint's ``minimize`` (``bounds=``, ``tol=``, ``options={"maxiter": 20}``,
        ``callback=`` called with the iterate's control vector). Reaching
        ``options={"maxiter": k}`` ends it normally (pyadjoint raises there).
    history
        A folder. Every value the optimiser gets is saved there as it is computed, and each
        completed iteration's J, gradient norm and control vector; a job run again with the
        same script, initial control, number of MPI processes and distribution of the mesh
        continues from where the last one ended (see :mod:`fe_adjoint.jobs.minimize`; under
        ``mpiexec`` distribute the mesh reproducibly, e.g. with
        ``distribution_parameters={"partitioner_type": "simple"}``). Methods that ask for Hessian
        actions are not recorded.
    verbose
        With ``history=``, print a line per completed iteration (rank 0) in place of
        SciPy's own output (``options={"disp": True}`` brings that back, on every rank).
    """
    if history is None:
        return pyadjoint_minimize(Jhat, method, scale, **kwargs)
    if method in _HESSIAN_METHODS:
        raise ConfigurationError(
            f"history= records J and its gradient, not the Hessian actions {method} asks for; "
            "use a first-order method (L-BFGS-B, BFGS, CG, SLSQP, TNC) or leave history= out"
        )
    comm = getattr(Jhat.controls[0].control, "comm", None) or MPI.COMM_WORLD
    recorded = OptimisationHistory(history, comm)
    warn_if_not_reproducible(Jhat.controls, comm, recorded.path)
    if recorded.calls and verbose and comm.rank == 0:
        print(f"fe_adjoint: continuing the optimisation in {recorded.path}: "
              f"{len(recorded.iterations)} iterations and {recorded.evaluations} evaluations "
              "done; answering them from the history", flush=True)
    rf_np = RecordedReducedFunctionalNumPy(Jhat, recorded, method, verbose)
    kwargs["options"] = {"disp": False, **kwargs.get("options", {})}  # ours: one line, rank 0
    kwargs["callback"] = rf_np.iteration_callback(kwargs.get("callback"))
    termination.on_termination("optimisation history", lambda: _saved_note(recorded))
    try:
        result = pyadjoint_minimize(rf_np, method, scale, **kwargs)
        message = "converged"
    except SciPyConvergenceError:
        # pyadjoint raises when SciPy stops at maxiter; a batch job's budget ends normally
        if len(recorded.iterations) < kwargs["options"].get("maxiter", np.inf):
            raise
        result = rf_np.set_controls(recorded.last_control())
        result = result[0] if len(result) == 1 else result
        message = "reached its iteration limit"
    finally:
        termination.forget("optimisation history")
    recorded.finish(message)
    return result


def _saved_note(history: OptimisationHistory) -> str | None:
    if not history.writer:
        return None
    return (f"{len(history.iterations)} completed optimisation iterations and "
            f"{history.evaluations} evaluations are saved in {history.path}; run the job "
            "again to continue from there")
