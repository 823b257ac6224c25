"""The guarded HTTP GET: the only place the engine opens a network connection for a source.

`fetch` parses the URL strictly, checks its host against the policy's allow-list, resolves the
name once, refuses if ANY resolved address is forbidden, and connects to one of those checked
addresses itself (the Host header and TLS SNI/certificate name stay the URL's name), so a DNS
answer cannot change between the check and the connection. Each redirect is a new URL checked
the same way. The whole fetch is bounded in time and bytes. Errors say what happened in a few
words (`refused: 127.0.0.1 is a loopback address`, `HTTP 404`, `timed out connecting`) and never
carry the server's response body or reason phrase.

Built on the standard library's `http.client`: pinning the connection to a checked address
takes one small connection subclass there, where a requests/urllib3 stack needs an adapter, a
pool and a resolver override per hop.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import ssl
import time
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from core.fetch.addresses import refusal
from core.fetch.policy import FetchError, FetchPolicy, ParsedURL, parse_url

__all__ = ["FetchedResponse", "fetch"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_UNAVAILABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Headers that must not follow a redirect to another origin (tokens, cookies).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchedResponse:
    """A complete response whose status the caller accepted."""

    url: str
    """The final URL, after redirects."""
    status: int
    headers: Mapping[str, str]
    """Lower-case names; a repeated header's values joined with ", "."""
    body: bytes


def fetch(
    url: str,
    *,
    policy: FetchPolicy,
    max_bytes: int,
    accept: str | None = None,
    headers: Mapping[str, str] | None = None,
    ok_statuses: Collection[int] = (),
    method: str = "GET",
    data: bytes | None = None,
) -> FetchedResponse:
    """GET (or POST `data` to) `url` under `policy`; return the response or raise `FetchError`.

    Args:
        url: An `http` or `https` URL (from a repository: hostile).
        policy: Allowed hosts, address rules, timeouts and the redirect limit.
        max_bytes: The largest body accepted; a larger one is an error, not a truncation.
        accept: The Accept header.
        headers: More request headers (for example Authorization). Credential headers are
            dropped when a redirect leaves the URL's origin.
        ok_statuses: Statuses besides 2xx returned rather than raised (for example 401, whose
            WWW-Authenticate header a registry client needs).
        method: `GET`, or `POST` to deliver `data` (a notification). A POST never follows a
            redirect: its body and credentials must reach only the checked URL.
        data: The request body of a POST.
    """
    if method not in ("GET", "POST"):
        raise ValueError(f"unsupported method {method}")
    if method == "POST":
        policy = dataclasses.replace(policy, max_redirects=0)
    deadline = time.monotonic() + policy.total_timeout
    current = parse_url(url)
    origin = current.origin
    sent = {k.lower(): v for k, v in (headers or {}).items()}
    if accept:
        sent["accept"] = accept
    for hop in range(policy.max_redirects + 1):
        if current.origin != origin:
            sent = {k: v for k, v in sent.items() if k not in _CREDENTIAL_HEADERS}
        status, got, body = _get_once(
            current, policy, sent, max_bytes, deadline, ok_statuses, (method, data)
        )
        if status in _REDIRECTS:
            location = got.get("location")
            if not location:
                raise FetchError(current.shown(), f"HTTP {status} without a Location")
            following = parse_url(urllib.parse.urljoin(str(current), location))
            if current.scheme == "https" and following.scheme != "https":
                raise FetchError(current.shown(), "refused: redirect from https to http")
            if hop == policy.max_redirects:
                break
            current = following
            continue
        if 200 <= status < 300 or status in ok_statuses:
            return FetchedResponse(str(current), status, got, body)
        raise FetchError(
            current.shown(), f"HTTP {status}", unavailable=status in _UNAVAILABLE_STATUS
        )
    reason = (
        "refused: redirects are not followed"
        if policy.max_redirects == 0
        else f"refused: more than {policy.max_redirects} redirects"
    )
    raise FetchError(parse_url(url).shown(), reason)


def _get_once(
    url: ParsedURL,
    policy: FetchPolicy,
    headers: Mapping[str, str],
    max_bytes: int,
    deadline: float,
    ok_statuses: Collection[int],
    request: tuple[str, bytes | None] = ("GET", None),
) -> tuple[int, dict[str, str], bytes]:
    """One request to one checked address: status, headers and body (empty for redirects)."""
    policy.check_host(url)
    addresses = _resolve(url, policy)
    connection = _connect(url, addresses, policy, deadline)
    try:
        _bound(connection, url, deadline)
        try:
            connection.request(request[0], url.target, body=request[1], headers=dict(headers))
            response = connection.getresponse()
        except TimeoutError:
            raise FetchError(
                url.shown(), "timed out waiting for the response", unavailable=True
            ) from None
        except (http.client.HTTPException, OSError):
            raise FetchError(url.shown(), "invalid or interrupted HTTP response") from None
        got = {name.lower(): value for name, value in response.getheaders()}
        if not (200 <= response.status < 300 or response.status in ok_statuses):
            # Neither redirects nor errors need a body; it is never read, so never shown.
            return response.status, got, b""
        return response.status, got, _read(connection, response, url, max_bytes, deadline)
    finally:
        connection.close()


def _resolve(url: ParsedURL, policy: FetchPolicy) -> list[str]:
    """Resolve the host and check every address: one forbidden address refuses the host."""
    try:
        if policy.resolver is not None:
            addresses = policy.resolver(url.host, url.port)
        else:
            infos = socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    except (OSError, UnicodeError):
        raise FetchError(url.shown(), "could not resolve the host", unavailable=True) from None
    if not addresses:
        raise FetchError(url.shown(), "could not resolve the host", unavailable=True)
    for address in addresses:
        why = refusal(
            address, allow_loopback=policy.allow_loopback, allow_private=policy.allow_private
        )
        if why:
            raise FetchError(url.shown(), f"refused: {why}")
    return addresses


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to a checked address, speaking to the URL's host name."""

    def __init__(self, url: ParsedURL, address: str, timeout: float) -> None:
        super().__init__(url.host, url.port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address; SNI and certificate check use the host name."""

    def __init__(
        self, url: ParsedURL, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(url.host, url.port, timeout=timeout, context=context)
        self.address = address
        self.tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        try:
            self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


def _tls_context(policy: FetchPolicy) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=policy.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _connect(
    url: ParsedURL, addresses: list[str], policy: FetchPolicy, deadline: float
) -> http.client.HTTPConnection:
    """Connect to the first checked address that answers."""
    reason = "could not connect"
    for address in addresses:
        timeout = min(policy.connect_timeout, max(0.001, deadline - time.monotonic()))
        connection: http.client.HTTPConnection = (
            _PinnedHTTPS(url, address, timeout, _tls_context(policy))
            if url.scheme == "https"
            else _PinnedHTTP(url, address, timeout)
        )
        try:
            connection.connect()
            return connection
        except ssl.SSLCertVerificationError:
            connection.close()
            raise FetchError(url.shown(), "TLS certificate verification failed") from None
        except ssl.SSLError:
            connection.close()
            raise FetchError(url.shown(), "TLS handshake failed", unavailable=True) from None
        except TimeoutError:
            connection.close()
            reason = "timed out connecting"
        except ConnectionRefusedError:
            connection.close()
            reason = "connection refused"
        except OSError:
            connection.close()
            reason = "could not connect"
    raise FetchError(url.shown(), reason, unavailable=True)


def _bound(connection: http.client.HTTPConnection, url: ParsedURL, deadline: float) -> None:
    """Let the next socket operation wait no longer than what is left of the total time."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(url.shown(), "timed out: the fetch took too long", unavailable=True)
    if connection.sock is not None:
        connection.sock.settimeout(left)


def _read(
    connection: http.client.HTTPConnection,
    response: http.client.HTTPResponse,
    url: ParsedURL,
    max_bytes: int,
    deadline: float,
) -> bytes:
    """Read the body within the byte cap and the deadline."""
    too_large = FetchError(url.shown(), f"refused: response larger than {max_bytes} bytes")
    length = response.getheader("content-length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            _bound(connection, url, deadline)
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
    except TimeoutError:
        raise FetchError(url.shown(), "timed out reading the response", unavailable=True) from None
    except (http.client.HTTPException, OSError):
        raise FetchError(url.shown(), "interrupted HTTP response", unavailable=True) from None
    return b"".join(chunks)
