"""Progress bars of a checkpointed run: one per pass (taping, forward, adjoint, tangent sweep).

The adjoint's bar counts adjoint steps and shows the forward steps recomputed on the way
and the checkpoint bytes held. Bars are drawn with the ``progress`` package (Firedrake's
own) on standard error.
"""

from __future__ import annotations

import sys

from ..sizes import format_bytes

LABELS = {"taping": "taping  ", "forward": "forward ", "reverse": "adjoint ",
          "sweep": "tangent "}


class ProgressBars:
    """Draws a bar per pass; ``force`` draws it even when standard error is not a terminal."""

    def __init__(self, force: bool = False, stream=None):
        self._check_tty = not force
        self._stream = stream if stream is not None else sys.stderr
        self._bar = None
        self._phase = None

    def begin(self, phase: str, total: int | None) -> None:
        """Start the bar of pass ``phase`` (of ``total`` steps) unless it is already shown."""
        if phase == self._phase:
            return
        from progress.bar import Bar

        self.end()
        self._phase = phase
        if self._check_tty and not _is_terminal(self._stream):
            return  # nothing would be drawn: no bar to update at every step
        # A run of unknown length (an online schedule) shows its count without a total.
        self._bar = Bar(LABELS[phase], max=max(1, total or 1), file=self._stream,
                        check_tty=self._check_tty, hide_cursor=False, width=24,
                        suffix=("%(index)d/%(max)d" if total else "%(index)d") +
                        " steps, %(recomputed)d recomputed, %(stored)s stored")
        self._bar.recomputed, self._bar.stored = 0, "0 B"

    def advance(self, phase: str, stored_bytes: int) -> None:
        """One step of ``phase`` is done; a forward step inside the adjoint is a recompute."""
        bar = self._bar
        if bar is None:
            return
        bar.stored = format_bytes(stored_bytes)
        if phase == "forward" and self._phase == "reverse":
            bar.recomputed += 1
            bar.update()
        else:
            bar.next()

    def end(self) -> None:
        """Finish the bar shown, if any."""
        if self._bar is not None:
            self._bar.finish()
        self._bar = self._phase = None


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())
