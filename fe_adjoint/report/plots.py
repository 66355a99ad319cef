"""Plots written to files: a schedule's timeline and storage, and Taylor-test convergence.

matplotlib is imported when a plot is made (``pip install fe_adjoint[plots]``), with its
file-only backend.
"""

from __future__ import annotations

import os

from ..planning.simulate import simulate

MARKERS = {  # what -> (colour, marker) of the timeline, drawn in this order
    "store": ("tab:green", "^"), "load": ("tab:orange", "v"),
    "forward": ("tab:blue", "."), "adjoint": ("tab:red", "."),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_schedule(schedule, n_steps: int, path: str | os.PathLike, restart_bytes: int = 1,
                  adjoint_bytes: int = 1, title: str | None = None) -> str:
    """Draw what ``schedule`` does over ``n_steps`` steps (it is not iterated itself).

    Top: step against action order, one mark per forward step, adjoint step, store and
    load, by storage level. Bottom: the bytes held per level over the run (with the given
    bytes of a step's restart and adjoint data). A :class:`~fe_adjoint.Plan` may be given
    as ``schedule``: its choice is drawn with its costs' bytes. Returns ``path``.
    """
    from ..planning.planner import Plan

    if isinstance(schedule, Plan):
        title = title or f"{schedule.choice.label()} (planned)"
        restart_bytes, adjoint_bytes = schedule.costs.restart_bytes, schedule.costs.adjoint_bytes
        schedule = schedule.schedule()
    usage = simulate(schedule, n_steps, restart_bytes, adjoint_bytes, record=True)
    plt = _pyplot()
    figure, (timeline, storage) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                               height_ratios=(3, 1))
    for what, (colour, marker) in MARKERS.items():
        for level in ("WORK", "RAM", "DISK"):
            points = [(i, e.step) for i, e in enumerate(usage.events)
                      if e.what == what and e.level == level]
            if points:
                x, y = zip(*points)
                label = what if what in ("forward", "adjoint") else f"{what} {level}"
                disk = level == "DISK" and what in ("store", "load")
                timeline.scatter(x, y, s=30 if disk else 10, c=colour,
                                 marker="s" if disk else marker, label=label)
    timeline.set_ylabel("step")
    timeline.legend(loc="upper right", fontsize="small", ncol=3)
    timeline.set_title(title or type(schedule).__name__)
    for level in ("RAM", "DISK"):
        held = [sample.get(level, 0) for sample in usage.storage]
        if any(held):
            storage.step(range(len(held)), held, where="post", label=level)
    storage.set_xlabel(f"action order ({usage.forward_steps} forward steps, "
                       f"{usage.recomputed} recomputed)")
    storage.set_ylabel("bytes held")
    storage.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return os.fspath(path)


def taylor_plot(Jhat, m, h, path: str | os.PathLike, hessian: bool = False,
                epsilons=(1e-2, 5e-3, 2.5e-3, 1.25e-3)) -> dict:
    """Taylor remainders of ``Jhat`` at ``m`` along ``h``, plotted log-log to ``path``.

    R0 = |J(m + eh) - J(m)| (rate 1), R1 = |R0 - e dJ.h| (rate 2) and, with ``hessian``,
    R2 = |R1 - e^2/2 h.H h| (rate 3). Returns ``{"eps", "R0", "R1"[, "R2"], "rates"}``
    with the smallest rate of each, as ``taylor_test`` reports.
    """
    import math

    from pyadjoint.enlisting import Enlist
    from pyadjoint.tape import stop_annotating

    hs, ms = Enlist(h), Enlist(m)
    with stop_annotating():
        J0 = float(Jhat(m))
        slope = sum(hi._ad_dot(di) for hi, di in zip(hs, Enlist(Jhat.derivative())))
        curve = sum(hi._ad_dot(hm) for hi, hm in zip(hs, Enlist(Jhat.hessian(h)))) \
            if hessian else 0.0
        residuals = {"R0": [], "R1": [], **({"R2": []} if hessian else {})}
        for eps in epsilons:
            moved = ms.delist([mi._ad_add(hi._ad_mul(eps)) for mi, hi in zip(ms, hs)])
            dJ = float(Jhat(moved)) - J0
            residuals["R0"].append(abs(dJ))
            residuals["R1"].append(abs(dJ - eps * slope))
            if hessian:
                residuals["R2"].append(abs(dJ - eps * slope - 0.5 * eps**2 * curve))
        Jhat(m)  # leave the run at m
    rates = {name: min(math.log(r[i] / r[i + 1]) / math.log(epsilons[i] / epsilons[i + 1])
                       for i in range(len(r) - 1)) for name, r in residuals.items()}
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for (name, r), order in zip(residuals.items(), (1, 2, 3)):
        axes.loglog(epsilons, r, "o-", label=f"{name} (rate {rates[name]:.2f})")
        axes.loglog(epsilons, [r[0] * (e / epsilons[0]) ** order for e in epsilons], ":",
                    color="grey")
    axes.set_xlabel("perturbation size")
    axes.set_ylabel("Taylor remainder")
    axes.legend()
    axes.set_title("Taylor test (dotted: rates 1, 2, 3)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return {"eps": list(epsilons), **residuals, "rates": rates}
