"""Serve HTTP from a background thread: one helper for the process's small HTTP servers.

`ThreadedServer` is a `ThreadingHTTPServer` that knows its open connections, so stopping can
cut idle keep-alive connections instead of waiting on them; `Serving` binds one in a background
thread, gives its URL, and stops it completely (no more accepts, connections cut, port released,
thread joined), any number of times. The artifact server and the development git server are both
built on it. What a server answers is its handler's business: this module serves nothing itself
and never logs a request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["Serving", "ThreadedServer"]


class ThreadedServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections (one handler thread each)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection, registered while it is open so `close_connections` reaches it."""
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_connections(self) -> None:
        """Wake the handlers blocked on open connections (idle keep-alive) so that they end."""
        with self._open_lock:
            for connection in self._open:
                # It may already be closed by the client, which is just as good.
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


S = TypeVar("S", bound=ThreadedServer)


class Serving(Generic[S]):
    """Run the server `make()` builds in a thread named `name`; a context manager."""

    def __init__(self, make: Callable[[], S], *, name: str, scheme: str = "http") -> None:
        self._make = make
        self._name = name
        self._scheme = scheme
        self._server: S | None = None
        self._thread: threading.Thread | None = None

    @property
    def server(self) -> S:
        """The running server (raises `RuntimeError` when not started)."""
        if self._server is None:
            raise RuntimeError(f"the {self._name} is not running")
        return self._server

    @property
    def url(self) -> str:
        """The base URL, such as `http://127.0.0.1:40123`."""
        host, port = self.server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def start(self) -> None:
        """Bind and serve in the background (a no-op when already serving)."""
        if self._server is not None:
            return
        self._server = self._make()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut open connections, release the port and join the thread."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Serving[S]:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
