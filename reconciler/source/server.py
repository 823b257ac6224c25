"""The artifact HTTP server: storage served read-only, as source-controller's storage server.

`GET` and `HEAD` of `/<kind>/<namespace>/<name>/<sha256 hex>.tar.gz` answer the file; every other
path, method or name answers 404/405 with no body worth reading, and no directory is ever listed.
Paths are matched against that exact shape before the file system is touched, and files are
opened without following links, so nothing outside the storage root can be served. Kustomizations
(ours, and Flux's kustomize-controller) download `status.artifact.url` from here.

It serves plain HTTP like source-controller (the digest in the status is what consumers verify);
it reads, never writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

from core.host.serving import Serving, ThreadedServer

__all__ = ["ArtifactServer"]

_log = logging.getLogger(__name__)

_PATH = re.compile(
    r"/([a-z]+)/([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)/([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)"
    r"/([0-9a-f]{64}\.tar\.gz)"
)


class ArtifactServer:
    """Serve a storage root over HTTP on `host:port` (port 0 picks a free one)."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root
        self._serving = Serving(lambda: _Server((host, port), root), name="artifact-server")

    @property
    def url(self) -> str:
        """The base URL, such as `http://127.0.0.1:40123`."""
        return self._serving.url

    def start(self) -> None:
        """Bind and serve in a background thread."""
        self._serving.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._serving.stop()

    def __enter__(self) -> ArtifactServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadedServer):
    def __init__(self, address: tuple[str, int], root: Path) -> None:
        self.root = root
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # A client that stalls cannot hold a thread for long.
    timeout = 60

    def do_GET(self) -> None:
        """Send an artifact."""
        self._serve(body=True)

    def do_HEAD(self) -> None:
        """Say whether an artifact exists, and its size."""
        self._serve(body=False)

    def do_POST(self) -> None:
        """Storage is read-only."""
        self._empty(405, {"Allow": "GET, HEAD"})

    def do_PUT(self) -> None:
        """Storage is read-only."""
        self._empty(405, {"Allow": "GET, HEAD"})

    def do_DELETE(self) -> None:
        """Storage is read-only."""
        self._empty(405, {"Allow": "GET, HEAD"})

    def log_message(self, format: str, *args: object) -> None:
        """Access logs go to logging, at debug level."""
        _log.debug("%s %s", self.address_string(), format % args)

    def _serve(self, *, body: bool) -> None:
        match = _PATH.fullmatch(unquote(urlsplit(self.path).path))
        if match is None:
            self._empty(404)
            return
        path = self.server.root.joinpath(*match.groups())
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            self._empty(404)
            return
        with os.fdopen(descriptor, "rb") as artifact:
            size = os.fstat(artifact.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if body:
                with contextlib.suppress(ConnectionError):
                    shutil.copyfileobj(artifact, self.wfile)

    def _empty(self, code: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
