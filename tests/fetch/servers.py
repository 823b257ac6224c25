"""Real HTTP servers on the loopback interface for fetch tests: routes, redirects, records."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# What an attacker would love to see echoed back into a report.
LEAKY_BODY = b"LEAKY-BODY-6a1f internal service banner"

Route = Callable[["Handler"], None]


@dataclass
class Server:
    """A running server: its base URL, the routes it answers and the requests it saw."""

    url: str
    port: int
    routes: dict[str, Route]
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class Handler(http.server.BaseHTTPRequestHandler):
    server_state: Server

    def do_GET(self) -> None:
        self.server_state.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = self.server_state.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.reply(404, LEAKY_BODY)
        else:
            route(self)

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status, "Leaky Reason " + LEAKY_BODY.decode())
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str, status: int = 302) -> None:
        self.reply(status, LEAKY_BODY, {"Location": location})

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[Server]:
    """Serve `routes` (path -> handler) on 127.0.0.1 on a free port."""
    state = Server("", 0, routes)
    handler = type("BoundHandler", (Handler,), {"server_state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.port = server.server_address[1]
    state.url = f"http://127.0.0.1:{state.port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
