"""How a run is stopped from outside: Ctrl-C, SIGTERM (a CI timeout, `kill PID`) and SIGHUP
(the terminal closed) all become KeyboardInterrupt, so every one of them heals the cluster
and still writes the artifacts; healing itself holds them until it is done."""

from __future__ import annotations

import signal
import threading
from typing import Any

#: Signals that mean "stop this run" to the harness.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(*_args: Any) -> None:
    raise KeyboardInterrupt


def interrupt_on_stop_signals() -> None:
    """Make SIGTERM and SIGHUP interrupt like Ctrl-C.

    SIGINT is also reset when it arrives ignored: a harness started as a background
    job of a non-interactive shell inherits SIG_IGN for it, and an explicit
    ``kill -INT`` must still heal and report.  Only the main thread can do this.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _raise_interrupt)


class DeferredInterrupt:
    """Hold the stop signals while healing: a second Ctrl-C or a SIGTERM must not leave the
    cluster broken.  ``interrupted`` tells whether one arrived meanwhile.

    Only the main thread receives signals; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, *_args: Any) -> None:
        self.interrupted = True

    def __exit__(self, *_exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
