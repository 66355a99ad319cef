"""``fe_adjoint.minimize(..., history=)``: the same iterates as pyadjoint's, and a run ended
part-way continues from its history to the same control.

The problem is the heat-inversion demo (the Slurm job's), small. A "job" is the demo's
script run on a fresh tape, as a resubmitted batch job would run it.
"""

import warnings

import numpy as np
import pytest
from pyadjoint.optimization.optimization import SciPyConvergenceError

import fe_adjoint

PROBLEM = ["--cells", "8", "--steps", "4", "--snapshots", "2"]
OPTIONS = {"maxiter": 6, "ftol": 0, "gtol": 0}


def _job(tmp_path, history, interrupt_at=None, schedule="mixed-disk", **kwargs):
    """Tape the demo on a fresh tape and minimise; KeyboardInterrupt in dJ call ``interrupt_at``."""
    from firedrake.adjoint import Tape, set_working_tape

    from demos import heat_inversion as demo

    set_working_tape(Tape())
    Jhat, m = demo.problem(demo.parse([*PROBLEM, "--schedule", schedule,
                                       "--disk-dir", str(tmp_path)]))
    runs = {"J": 0, "dJ": 0}

    class Counted(type(Jhat)):
        def __call__(self, *args, **kw):
            runs["J"] += 1
            return super().__call__(*args, **kw)

        def derivative(self, *args, **kw):
            runs["dJ"] += 1
            if runs["dJ"] == interrupt_at:
                raise KeyboardInterrupt  # Ctrl-C, or a job ended in the middle of an adjoint
            return super().derivative(*args, **kw)

    Jhat.__class__ = Counted
    if history is not None:
        m_opt = fe_adjoint.minimize(Jhat, history=history, options=dict(OPTIONS), **kwargs)
        return m_opt.dat.data_ro.copy(), runs
    iterates = []  # pyadjoint raises at maxiter: its last iterate is the callback's
    with pytest.raises(SciPyConvergenceError, match="ITERATIONS REACHED LIMIT"):
        fe_adjoint.minimize(Jhat, options=dict(OPTIONS), callback=iterates.append)
    return iterates[-1], runs


@pytest.fixture(scope="module")
def plain_minimize(tmp_path_factory):
    """pyadjoint's own minimize on the same problem: the iterates to reproduce."""
    return _job(tmp_path_factory.mktemp("plain"), history=None)[0]


@pytest.mark.parametrize("schedule", ["mixed-disk", "memory"])
def test_with_a_history_the_iterates_are_pyadjoints(tmp_path, plain_minimize, schedule):
    m_opt, runs = _job(tmp_path, tmp_path / "history", schedule=schedule)
    assert np.max(np.abs(m_opt - plain_minimize)) <= 1e-12 * np.max(np.abs(plain_minimize))
    history = fe_adjoint.OptimisationHistory(tmp_path / "history")
    assert len(history.iterations) == OPTIONS["maxiter"]
    assert history.evaluations == runs["J"] and len(history.calls) == runs["J"] + runs["dJ"]
    assert np.array_equal(history.last_control(), m_opt)


def test_an_interrupted_optimisation_continues_to_the_same_control(tmp_path, plain_minimize):
    history = tmp_path / "history"
    with pytest.raises(KeyboardInterrupt):
        _job(tmp_path, history, interrupt_at=4)
    saved = fe_adjoint.OptimisationHistory(history)
    assert 0 < len(saved.iterations) < OPTIONS["maxiter"]
    replayed = saved.replayed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m_opt, runs = _job(tmp_path, history)  # the job submitted again
    assert not [w for w in caught if "same bits" in str(w.message)]
    assert np.max(np.abs(m_opt - plain_minimize)) <= 1e-12 * np.max(np.abs(plain_minimize))
    total = fe_adjoint.OptimisationHistory(history)
    assert len(total.iterations) == OPTIONS["maxiter"]
    # only the calls after the interruption ran (and one forward to bring the tape there)
    assert runs["J"] + runs["dJ"] <= len(total.calls) - replayed + 1
    m_again, runs = _job(tmp_path, history)  # a finished history: nothing runs
    assert np.array_equal(m_again, m_opt) and runs == {"J": 0, "dJ": 0}


def test_a_job_that_computes_other_bits_is_warned_of(tmp_path):
    """A history whose J at the initial control differs from this tape's by one ulp (as a
    non-reproducible parallel solve gives): continued, with a warning that says why."""
    history = tmp_path / "history"
    with pytest.raises(KeyboardInterrupt):
        _job(tmp_path, history, interrupt_at=3)
    first = history / "calls" / "000000.npz"
    with np.load(first) as data:
        kind, x, value = str(data["kind"]), data["x"], data["value"]
    np.savez(first, kind=kind, x=x, value=np.nextafter(value, np.inf))
    with pytest.warns(UserWarning, match="does not compute the same bits.*SuperLU_DIST"):
        _job(tmp_path, history)
    assert len(fe_adjoint.OptimisationHistory(history).iterations) == OPTIONS["maxiter"]


def test_a_history_of_another_run_is_refused(tmp_path):
    from firedrake.adjoint import Tape, set_working_tape

    from demos import heat_inversion as demo

    _job(tmp_path, tmp_path / "history")
    for other in (["--steps", "5"], ["--cells", "6"]):  # the same control size, or not
        set_working_tape(Tape())
        Jhat, m = demo.problem(demo.parse([*PROBLEM, *other, "--disk-dir", str(tmp_path)]))
        with pytest.raises(fe_adjoint.ConfigurationError,
                           match="belongs to another run: J at the initial control|size 81"):
            fe_adjoint.minimize(Jhat, history=tmp_path / "history", options=dict(OPTIONS))
    with pytest.raises(fe_adjoint.ConfigurationError, match="Newton-CG"):
        fe_adjoint.minimize(Jhat, method="Newton-CG", history=tmp_path / "other")


def test_a_history_written_under_another_dof_order_is_refused(tmp_path, monkeypatch):
    """A mesh numbered otherwise (as another MPI distribution would) gives the same J at the
    zero initial guess: only the DoF-order fingerprint tells the recorded vectors apart."""
    import functools

    import firedrake
    from firedrake.adjoint import Tape, set_working_tape

    from demos import heat_inversion as demo

    _job(tmp_path, tmp_path / "history")
    monkeypatch.setattr(demo, "UnitSquareMesh",
                        functools.partial(firedrake.UnitSquareMesh, reorder=False))
    set_working_tape(Tape())
    Jhat, m = demo.problem(demo.parse([*PROBLEM, "--disk-dir", str(tmp_path)]))
    with pytest.raises(fe_adjoint.ConfigurationError,
                       match="distributed or numbered differently.*partitioner_type"):
        fe_adjoint.minimize(Jhat, history=tmp_path / "history", options=dict(OPTIONS))


def test_the_demo_writes_its_results_report_control_and_history(tmp_path):
    import json

    from demos import heat_inversion as demo

    out = tmp_path / "results"
    results = demo.main([*PROBLEM, "--iterations", "3", "--disk-dir", str(tmp_path),
                         "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["control.h5", "history", "report.json",
                                                    "results.json"]
    assert json.loads((out / "results.json").read_text()) == results
    assert len(results["iterations"]) == 3 and results["processes"] == 1
    assert results["iterations"][-1]["J"] < results["J0"]


def test_a_real_and_a_function_control_are_recorded_together(tmp_path):
    """An R-space control beside a P1 one, as a history takes them; the fingerprint passes
    over controls that live on no mesh (pyadjoint 2026.10's NumPy view cannot take a
    Constant control, so minimize cannot either)."""
    from firedrake import Constant, Function, FunctionSpace, UnitIntervalMesh, adjoint, assemble, dx
    from mpi4py import MPI

    from fe_adjoint.jobs.partition import partition_fingerprint

    adjoint.set_working_tape(adjoint.Tape())
    adjoint.continue_annotation()
    mesh = UnitIntervalMesh(4)
    r, f = Function(FunctionSpace(mesh, "R", 0)), Function(FunctionSpace(mesh, "CG", 1))
    J = assemble(((r - 1) ** 2 + (f - 2) ** 2) * dx)
    adjoint.pause_annotation()
    controls = [adjoint.Control(r), adjoint.Control(f)]
    r_opt, f_opt = fe_adjoint.minimize(adjoint.ReducedFunctional(J, controls),
                                       history=tmp_path / "history")
    assert r_opt.dat.data_ro == pytest.approx(1.0) and f_opt.dat.data_ro == pytest.approx(2.0)
    meta = fe_adjoint.OptimisationHistory(tmp_path / "history").meta
    on_no_mesh = [adjoint.Control(Constant(1.0)), adjoint.Control(adjoint.AdjFloat(1.0))]
    assert meta["size"] == 6
    assert meta["partition"] == partition_fingerprint([*controls, *on_no_mesh], MPI.COMM_WORLD)
