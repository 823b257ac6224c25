"""Fetching sources over the network, guarded against server-side request forgery.

Every byte Tidegate downloads for a source (a chart repository index, a chart archive, an OCI
manifest or blob) goes through `fetch`, before any renderer runs; renderers get local files and
no network. URLs come from pull-request content, so they are hostile.

Public API (stable; everything else in the package is private):

- `fetch(url, *, policy, max_bytes, accept=None, headers=None, ok_statuses=(), method="GET",
  data=None) -> FetchedResponse`
  GET over http/https. Returns the final `url`, `status`, lower-case `headers` and `body` of a 2xx
  response (or of a status listed in `ok_statuses`, such as 401 for a registry's token dance);
  raises `FetchError` for anything else.
- `FetchPolicy(allowed_hosts=frozenset(), allow_loopback=False, allow_private=False,
  connect_timeout=5.0, total_timeout=60.0, max_redirects=3, resolver=None, ca_file=None)`:
  allowed `host` / `host:port` entries (a bare host allows ports 80 and 443 only; None allows
  every host, for trusted configuration), the address opt-ins, time bounds and redirect limit.
  `policy.allowing(hosts)` adds entries; `policy.check_host(parse_url(url))` checks a host without
  connecting.
- `FetchError(url, reason, *, unavailable=False)`: `str()` is "URL: reason" with the URL's query
  left out; `reason` is short (`refused: 127.0.0.1 is a loopback address`, `HTTP 404`, `timed out
  connecting`) and never contains a response body; `unavailable` is True when the source could
  not be reached (DNS, connect, timeout, HTTP 408/429/5xx) as opposed to refused or wrong.
- `parse_url(url, *, schemes=("http", "https")) -> ParsedURL` (`scheme`, `host`, `port`,
  `target`, `origin`, `shown()`): the strict parse `fetch` uses; pass `schemes=("oci",)` to check
  an `oci://` URL the same way before mapping it to https.
- `allow_list_entry_of(url)`: the `host:port` entry a trusted URL contributes to an allow-list.
- `refusal(address, *, allow_loopback=False, allow_private=False) -> str`: why an IP address is
  forbidden ("" when it is not).

Rules, in order, for the URL and every redirect (at most `max_redirects`, never https -> http):
strict parse; host on the allow-list; resolve the name; refuse if ANY resolved address is
loopback, private, shared (100.64/10), link-local (169.254/16, cloud metadata), "this network"
(0/8), multicast, reserved, documentation or unspecified, after unwrapping IPv4-mapped, 6to4,
Teredo and NAT64 forms (`127.1`, `0x7f.1` and `2130706433` are judged as the 127.0.0.1 they
resolve to); connect to a checked address with Host and TLS SNI set to the name; bound the
connect time, the total time and the body size. Credential headers are dropped when a redirect
leaves the origin.

This package imports only `core.errors` (and the standard library): it knows nothing of Flux,
charts or rendering, and it must never put a response body in an error.
"""

from __future__ import annotations

from core.fetch.addresses import refusal
from core.fetch.http import FetchedResponse, fetch
from core.fetch.policy import (
    FetchError,
    FetchPolicy,
    ParsedURL,
    allow_list_entry_of,
    parse_url,
)

__all__ = [
    "FetchError",
    "FetchPolicy",
    "FetchedResponse",
    "ParsedURL",
    "allow_list_entry_of",
    "fetch",
    "parse_url",
    "refusal",
]
