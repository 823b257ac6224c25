"""The production HTTP server: the webhook app under gunicorn, with review workers beside it.

Each gunicorn worker process builds its own app, store and database engine after the fork (no
connection is shared across a fork), and, unless the caller serves webhooks only, runs one
review worker thread: a dead process is replaced by gunicorn and its job is claimed again after
its lease. Requests are served by threads (`gthread`), so a slow client never blocks the
acknowledgement of others. Once a worker has built its app, everything built so far is frozen
out of the garbage collector (`gc.freeze`): those long-lived objects (modules, Flask, SQLAlchemy)
were what made each full collection stop the process for a tenth of a second or more, holding
every acknowledgement in it back. The worker can also be given a shorter interpreter switch
interval (`switch_interval`, `tidegate serve --switch-interval`): a request thread that comes
back from the database or a socket waits for the interpreter lock until the running thread is
made to give it up, up to 5 ms by default, and an acknowledgement passes through several such
hand-overs. Whether a shorter one shortens the tail depends on the machine (with more runnable
processes than cores each forced hand-over can wait for a core instead), so it is not set by
default. Workers are gunicorn's threaded worker with one change (`HeartbeatWorker`): the
heartbeat the arbiter watches is touched at most once a second instead of on every turn of the
worker's loop, which at a burst of webhooks is once per request. This module knows gunicorn; it
knows nothing of Flask's internals.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

__all__ = ["HEARTBEAT_SECONDS", "GunicornServer", "HeartbeatWorker"]

HEARTBEAT_SECONDS = 1.0
"""How often a worker tells the arbiter it is alive; gunicorn's `timeout` is far longer."""


class HeartbeatWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's threaded (`gthread`) worker, touching its heartbeat at most once a second.

    The threaded worker calls `notify` on every turn of its event loop: a system call (`utime`
    of its heartbeat file) that gives up and takes back the interpreter lock each time, so every
    request's hand-over between the loop and a request thread paid for one. The arbiter only
    needs a touch within `timeout` (60 s).
    """

    clock: Callable[[], float] = time.monotonic
    _next_beat = 0.0

    def notify(self) -> None:
        """Touch the heartbeat if the last touch is `HEARTBEAT_SECONDS` old."""
        now = self.clock()
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT_SECONDS
            super().notify()


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """Serve the WSGI app `factory` builds (in each worker process) with gunicorn `options`.

    `switch_interval`: the seconds a worker's thread may keep the interpreter lock while another
    waits (`sys.setswitchinterval`); None leaves the interpreter's own.
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        options: Mapping[str, Any],
        *,
        switch_interval: float | None = None,
    ) -> None:
        self._factory = factory
        self._options = dict(options)
        self._switch_interval = switch_interval
        super().__init__()

    def load_config(self) -> None:
        """Apply the options (gunicorn calls this before it forks)."""
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """Build the app; gunicorn calls this in each worker after the fork."""
        if self._switch_interval is not None:
            # Before the app is built, so that the review thread it starts runs with it too.
            sys.setswitchinterval(self._switch_interval)
        app = self._factory()
        # Later collections then examine only what requests allocate, not the app itself.
        gc.collect()
        gc.freeze()
        return app
