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
default. This module knows gunicorn; it knows nothing of Flask's internals.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Mapping
from typing import Any

from gunicorn.app.base import BaseApplication

__all__ = ["GunicornServer"]


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
