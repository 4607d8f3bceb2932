"""Ctrl-C and SIGTERM (what ``timeout``, ``kill`` and batch schedulers send) as exceptions.

By default SIGTERM ends Python at once, without running ``finally`` blocks: temporary files stay
behind and a training run loses everything since its last checkpoint. :func:`terminate_as_exception`
makes SIGTERM raise :class:`~tomoconsensus.errors.Interrupted` (a ``KeyboardInterrupt``) like
Ctrl-C, so atomic writes clean up. :class:`StopRequest` defers both signals to a safe point (the
end of a training step, or between two slices of a preparation), where the caller saves a
checkpoint that resumes exactly or calls :meth:`StopRequest.check`; a second signal stops at once.
A handler that raises can fire inside compiled code (a Numba kernel called from Python), which then
ends in a ``SystemError`` traceback instead of the one-line message: long compiled loops run under
:class:`StopRequest`. ``kill -9`` cannot be caught by any process (see :mod:`tomoconsensus.atomic`).

Within :func:`terminate_as_exception`, SIGXFSZ (a file-size limit, ``ulimit -f``, reached) is ignored:
the write then fails with EFBIG, which the CLI reports in one line like a full disk, instead of the
process dying with a core dump and its temporary files left behind.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from tomoconsensus.errors import Interrupted

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise(signum, frame):
    raise Interrupted(signum, f"stopped by {SIGNAL_NAMES.get(signum, signum)}; no partial output was left")


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM raises Interrupted (as Ctrl-C raises KeyboardInterrupt); SIGXFSZ is ignored."""
    if not _main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise)
    old_xfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGXFSZ, old_xfsz)


class StopRequest:
    """Within ``with StopRequest() as stop:``, SIGINT/SIGTERM set ``stop.signum`` instead of raising.

    The loop checks ``stop.signum`` at a safe point. A second signal raises Interrupted at once.
    Outside the main thread (signals cannot be handled there) it does nothing.

    Parameters
    ----------
    kept : str
        What is left after a stop, for the messages (a training run keeps its last checkpoint).
    """

    def __init__(self, kept: str = "the last periodic checkpoint is kept") -> None:
        self.signum: int | None = None
        self.kept = kept
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise Interrupted(signum, f"stopped at once by a second {SIGNAL_NAMES.get(signum, signum)}; {self.kept}")
        self.signum = signum

    def check(self) -> None:
        """Raise Interrupted here, at a safe point, if a signal came since the block began."""
        if self.signum is not None:
            raise Interrupted(self.signum, f"stopped by {SIGNAL_NAMES.get(self.signum, self.signum)}; {self.kept}")

    def __enter__(self) -> StopRequest:
        if _main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
