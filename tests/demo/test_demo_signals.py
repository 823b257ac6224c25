"""Why the demo remembers a stop signal: CPython can drop the exception its handler raises.

A signal handler runs in the main thread at whatever Python code runs there next, and that may be
a finalizer: an unclosed HTTP response's `close()` run when it is collected, for one, and the demo
polls its servers over HTTP all the time. What a handler raises there is discarded (IOBase's
finalizer discards it without a word), so raising alone can lose a Ctrl-C. The demo's handler
also records the signal, and every step and poll raises it again; this checks that a signal lost
that way is raised at the next check, with a real signal and a real finalizer.
"""

from __future__ import annotations

import io
import os
import signal
import time

import pytest

from cli import demo


class _ClosesUnderASignal(io.RawIOBase):
    """An I/O object whose `close()` receives SIGTERM, as an HTTP response's may."""

    def __init__(self, signals: demo._Signals) -> None:
        super().__init__()
        self.signals = signals

    def close(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.signals.signum is None and time.monotonic() < deadline:
            pass  # the handler runs here, between two bytecodes of this finalizer
        super().close()


def test_a_signal_whose_exception_a_finalizer_drops_is_raised_at_the_next_check() -> None:
    signals = demo._Signals()
    previous = signal.signal(signal.SIGTERM, signals.received)
    try:
        _ClosesUnderASignal(signals)  # collected at once: its finalizer calls close()
        assert signals.signum == signal.SIGTERM  # received, and its exception went nowhere
        with pytest.raises(demo.Interrupted) as raised:
            signals.check()
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert (raised.value.signum, raised.value.signame) == (signal.SIGTERM, "SIGTERM")
