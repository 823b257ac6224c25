"""What the fetcher may reach: the strict URL parse, the host allow-list and the error type.

A URL from a repository is hostile. `parse_url` accepts only an absolute `http`, `https` or `oci`
URL with a plain host name or IP literal, an optional port and no user information, and gives
back its parts; `FetchPolicy.check_host` says whether that host and port may be contacted at all
(before any name is resolved, so a refused host costs no DNS query and reveals nothing). The
address rules live in `core.fetch.addresses`; the connection in `core.fetch.http`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from core.errors import Failure, TidegateError

__all__ = [
    "DEFAULT_PORTS",
    "FetchError",
    "FetchPolicy",
    "ParsedURL",
    "allow_list_entry_of",
    "host_key",
    "parse_url",
]

DEFAULT_PORTS = {"http": 80, "https": 443, "oci": 443}
_MAX_URL = 2048
# A DNS name: dot-separated labels of letters, digits and inner hyphens (and `_`, seen in the
# wild). Anything else, including non-ASCII and percent-encoding, is refused rather than guessed.
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_IPV6_LITERAL = re.compile(r"^[0-9a-f:.]+$")

Resolver = Callable[[str, int], list[str]]
"""Resolve (host, port) to numeric addresses; `core.fetch.http` uses `getaddrinfo` by default."""


class FetchError(TidegateError):
    """A fetch was refused or failed; the message is the URL and a short reason, never a body.

    `unavailable` is True when the source could not be reached (name resolution, connection,
    timeout, HTTP 408/429/5xx): a condition of the network or the server, not of the request.
    Refusals by policy, other HTTP statuses and oversized or malformed responses are False.
    """

    failure = Failure.SOURCE

    def __init__(self, url: str, reason: str, *, unavailable: bool = False) -> None:
        self.url = url
        self.reason = reason
        self.unavailable = unavailable
        super().__init__(f"{url}: {reason}")


@dataclass(frozen=True)
class ParsedURL:
    """An accepted URL, split."""

    scheme: str
    host: str
    """Lower case; an IPv6 literal without brackets."""
    port: int
    """The explicit port, else the scheme's default."""
    target: str
    """Path and query as sent in the request line (`/` when empty)."""

    @property
    def origin(self) -> str:
        """Scheme, host and port: what a redirect must keep to keep credentials."""
        return f"{self.scheme}://{host_key(self.host, self.port)}"

    def shown(self) -> str:
        """The URL without its query, for messages (queries can carry signed tokens)."""
        return self.origin + self.target.split("?", 1)[0]

    def __str__(self) -> str:
        return self.origin + self.target


def host_key(host: str, port: int) -> str:
    """Return `host:port` (`[v6]:port` for an IPv6 literal), the allow-list's unit."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_url(url: str, *, schemes: Iterable[str] = ("http", "https")) -> ParsedURL:
    """Parse `url` strictly, or raise a `FetchError` saying what is wrong with it.

    Refused: other schemes, control characters or spaces, user information (`user@host`),
    a missing or malformed host, percent-encoded or non-ASCII host names, IPv6 zone ids, ports
    outside 1-65535. Numeric forms such as `127.1` or `2130706433` pass this parse: they are
    judged on the address they resolve to.
    """
    shown = url if len(url) <= 200 else url[:200] + "…"
    if not isinstance(url, str) or not url or len(url) > _MAX_URL:
        raise FetchError(shown[:200], "refused: not a URL of acceptable length")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise FetchError(repr(shown), "refused: the URL contains spaces or control characters")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = tuple(schemes)
    if scheme not in allowed:
        raise FetchError(shown, f"refused: scheme must be one of {', '.join(allowed)}")
    if "@" in parts.netloc:
        raise FetchError(f"{scheme}://…", "refused: credentials in the URL are not accepted")
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        if not _IPV6_LITERAL.match(host):
            raise FetchError(shown, "refused: malformed IPv6 host")
    elif not _HOSTNAME.match(host):
        raise FetchError(shown, "refused: malformed host name")
    try:
        explicit = parts.port
    except ValueError:
        raise FetchError(shown, "refused: malformed port") from None
    if explicit == 0:
        raise FetchError(shown, "refused: malformed port")
    port = explicit or DEFAULT_PORTS.get(scheme, 0)
    if port == 0:
        raise FetchError(shown, "refused: the URL needs a port")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return ParsedURL(scheme, host.rstrip("."), port, target)


@dataclass(frozen=True)
class FetchPolicy:
    """Where and how long the fetcher may connect.

    Hosts are matched by `host:port`; an entry without a port allows the scheme's default ports
    (80 and 443) only, so allowing a host does not open its other ports to probing.
    """

    allowed_hosts: frozenset[str] | None = frozenset()
    """`host` or `host:port` entries; None allows every host (for trusted configuration only,
    such as the base revision). Address rules apply either way."""
    allow_loopback: bool = False
    """Allow 127.0.0.0/8 and ::1 (tests serve chart repositories there). Off by default."""
    allow_private: bool = False
    """Allow RFC 1918, 100.64.0.0/10 and fc00::/7 (an on-premises chart mirror). Off by
    default. Link-local (cloud metadata), multicast, reserved and unspecified addresses are
    never allowed."""
    connect_timeout: float = 5.0
    """Seconds to connect to one address."""
    total_timeout: float = 60.0
    """Seconds for the whole fetch, redirects and body included."""
    max_redirects: int = 3
    """Redirects followed, each one checked like the first URL; 0 refuses redirects."""
    resolver: Resolver | None = field(default=None, compare=False)
    """Name resolution (None: `getaddrinfo`). A seam for tests of names that cannot exist."""
    ca_file: str | None = None
    """Extra trusted certificates (PEM) for HTTPS, instead of the system store."""

    def __post_init__(self) -> None:
        if self.allowed_hosts is not None:
            object.__setattr__(self, "allowed_hosts", frozenset(map(_entry, self.allowed_hosts)))

    def allowing(self, hosts: Iterable[str]) -> FetchPolicy:
        """Return this policy with more allowed host entries (no-op when all are allowed)."""
        if self.allowed_hosts is None:
            return self
        return replace(self, allowed_hosts=self.allowed_hosts | {_entry(h) for h in hosts})

    def check_host(self, url: ParsedURL) -> None:
        """Raise a `FetchError` unless the URL's host and port are on the allow-list."""
        if self.allowed_hosts is None:
            return
        key = host_key(url.host, url.port)
        bare_default = url.host in self.allowed_hosts or f"[{url.host}]" in self.allowed_hosts
        if key in self.allowed_hosts or (bare_default and url.port in (80, 443)):
            return
        raise FetchError(url.shown(), f"refused: host {key} is not on the allow-list")


def _entry(host: str) -> str:
    """Normalise an allow-list entry: lower case, no trailing dot."""
    return host.strip().lower().rstrip(".")


def allow_list_entry_of(url: str) -> str:
    """Return the `host:port` entry that allows `url` (for hosts a trusted revision uses)."""
    parsed = parse_url(url, schemes=DEFAULT_PORTS)
    return host_key(parsed.host, parsed.port)
