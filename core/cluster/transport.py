"""A lean HTTPS transport to the apiserver for `core.cluster.live`: kept-alive connections.

The Kubernetes client's own request path (parameter sanitising, urllib3's pool manager) costs
about twice the CPU of the request itself, and a reconcile sends one or two requests per object.
`Transport` sends them over plain `http.client` connections made from the same client
configuration: its CA, its client certificate, its bearer token (through the client's own auth
step, so an exec plugin's or a rotated in-cluster token is refreshed as before) and its default
headers (impersonation, user agent). A configuration it does not cover (a proxy, TLS
verification turned off, a TLS server name or hostname check of its own, no CA file, plain HTTP)
gets None from `for_client`, and the caller keeps the client's path.

It never logs, and returns response bodies only to its caller: errors carry the status and the
exception's type, never a body.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["Response", "Transport", "TransportError"]


class TransportError(Exception):
    """The request could not be sent or its answer not read (the connection, not the server)."""


@dataclass(frozen=True)
class Response:
    """The apiserver's answer: status, reason phrase and body."""

    status: int
    reason: str
    body: bytes


# Idle connections kept for reuse: the apply engine's writers and the reconcile workers at once.
_MAX_IDLE = 16

# Failures that mean a kept-alive connection was closed by the server while idle: the request
# never reached it, so it is sent once more on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Transport:
    """Requests to one apiserver as one client configuration, over a bounded set of connections.

    A request takes an idle connection (or opens one) and gives it back once the answer is read,
    so the threads of successive apply stages share the same few connections.
    """

    def __init__(self, api: Any, timeouts: tuple[float, float]) -> None:
        configuration = api.configuration
        parts = urlsplit(str(configuration.host))
        self._api = api
        self._host = str(parts.hostname)
        self._port = parts.port or 443
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout, self._read_timeout = timeouts
        self._context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            self._context.load_cert_chain(configuration.cert_file, configuration.key_file)
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPSConnection] = []

    @classmethod
    def for_client(cls, api: Any, timeouts: tuple[float, float]) -> Transport | None:
        """A transport for the client `api`, or None when its configuration needs the client's."""
        configuration = getattr(api, "configuration", None)
        if configuration is None:
            return None
        plain = (
            str(configuration.host or "").startswith("https://")
            and configuration.verify_ssl
            and configuration.ssl_ca_cert
            and not configuration.proxy
            and configuration.assert_hostname is None
            and not configuration.tls_server_name
        )
        return cls(api, timeouts) if plain else None

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Response:
        """Send one request and read the whole answer.

        Raises:
            TransportError: the connection failed (the message names the exception's type).
        """
        url = self._prefix + path + (f"?{urlencode(list(query))}" if query else "")
        sent = {**self._api.default_headers, **headers}
        self._api.update_params_for_auth(sent, [], ["BearerToken"])
        for attempt in (1, 2):
            # A second attempt never takes an idle connection: it may be as stale as the first.
            connection, reused = self._connection(fresh=attempt == 2)
            try:
                connection.request(method, url, body=body, headers=sent)
                response = connection.getresponse()
                data = response.read()
            except _STALE as exc:
                self._drop(connection)
                if reused and attempt == 1:
                    continue
                raise TransportError(type(exc).__name__) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                raise TransportError(type(exc).__name__) from None
            if response.will_close:
                self._drop(connection)
            else:
                self._release(connection)
            return Response(response.status, str(response.reason or ""), data)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def close(self) -> None:
        """Close the idle connections (from any thread); later requests open new ones."""
        with self._lock:
            connections, self._idle = self._idle, []
        for connection in connections:
            connection.close()

    def _connection(self, *, fresh: bool) -> tuple[http.client.HTTPSConnection, bool]:
        """An idle connection to reuse (unless `fresh`), else a new one; and whether reused."""
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop(), True
        connection = http.client.HTTPSConnection(
            self._host, self._port, timeout=self._connect_timeout, context=self._context
        )
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            raise TransportError(type(exc).__name__) from None
        if connection.sock is not None:
            connection.sock.settimeout(self._read_timeout)
        return connection, False

    def _release(self, connection: http.client.HTTPSConnection) -> None:
        """Keep a connection whose answer was read whole for the next request, up to a bound."""
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()

    @staticmethod
    def _drop(connection: http.client.HTTPSConnection) -> None:
        connection.close()
