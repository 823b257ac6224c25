"""The process around the reconcile loop: probes and metrics, leader election, clean shutdown.

`Operations.run(lead)` is the seam the loop plugs into. `lead(stop)` is the loop's work: it must
return soon after `stop` is set. With an elector, `lead` runs only while this replica holds the
Lease and is told to stop as soon as leadership is lost (and started again when it is
regained); without one it runs at once. SIGTERM and SIGINT stop everything: the loop is told to
stop and joined, the Lease is released for a standby, the HTTP server is closed, and `run`
returns 0. `/readyz` is ready from the moment the process serves, leader or standby, so a rollout
does not wait for an election. This module does not reconcile and does not read objects.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from reconciler.leader import LeaderElector
from reconciler.metrics import MetricsServer

__all__ = ["Operations"]

Work = Callable[[threading.Event], None]


class Operations:
    """Run `lead` under leader election with probes, until SIGTERM."""

    def __init__(self, server: MetricsServer | None, elector: LeaderElector | None) -> None:
        self._server, self._elector = server, elector
        self.stop = threading.Event()
        self.ready = threading.Event()
        self._term: tuple[threading.Event, threading.Thread] | None = None

    def install_signal_handlers(self) -> None:
        """Stop on SIGTERM (the kubelet's) and SIGINT (Ctrl-C); main thread only."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def run(self, lead: Work) -> int:
        """Serve, elect and lead until stopped; return the exit code (0 on a clean stop)."""
        if self._server is not None:
            self._server.start()
        self.ready.set()
        try:
            if self._elector is None:
                lead(self.stop)
            else:
                self._elector.run(self.stop, lambda: self._start(lead), self._end)
        finally:
            self._end()
            self.ready.clear()
            if self._server is not None:
                self._server.stop()
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def _start(self, lead: Work) -> None:
        term_stop = threading.Event()
        worker = threading.Thread(target=lead, args=(term_stop,), name="reconcile", daemon=True)
        self._term = (term_stop, worker)
        worker.start()

    def _end(self) -> None:
        # Leadership lost or the process stops: the loop must stop writing before we go on.
        if self._term is None:
            return
        term_stop, worker = self._term
        self._term = None
        term_stop.set()
        worker.join()
