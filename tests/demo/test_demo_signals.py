"""Why the demo's stop-signal handler only records the signal: what a handler raises can be lost,
or can leave a lock held.

A signal handler runs in the main thread at whatever Python code runs there next. That may be a
finalizer: an unclosed HTTP response's `close()` run when it is collected, for one, and the demo
polls its servers over HTTP all the time; what a handler raises there is discarded (IOBase's
finalizer discards it without a word). It may also be the line between a lock's acquire and its
release in Python code, where an exception leaves the lock held and the next thread to take it
waits forever. So the handler only records the signal, and every step and poll raises it; these
tests check that with a real signal, a real finalizer and a real lock.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
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


class _HoldsALockUnderASignal:
    """Code that takes a lock in Python and receives SIGTERM before it lets go of it."""

    def __init__(self, signals: demo._Signals) -> None:
        self.lock = threading.Lock()
        self.signals = signals

    def run(self) -> None:
        self.lock.acquire()
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.signals.signum is None and time.monotonic() < deadline:
            pass  # the handler runs here, while the lock is held
        self.lock.release()


def test_a_signal_between_a_lock_s_acquire_and_release_leaves_the_lock_free() -> None:
    signals = demo._Signals()
    previous = signal.signal(signal.SIGTERM, signals.received)
    holder = _HoldsALockUnderASignal(signals)
    try:
        # A handler that raised would end this with the lock still held.
        with contextlib.suppress(demo.Interrupted):
            holder.run()
        assert signals.signum == signal.SIGTERM
        assert holder.lock.acquire(timeout=5)
        with pytest.raises(demo.Interrupted):
            signals.check()
    finally:
        signal.signal(signal.SIGTERM, previous)
