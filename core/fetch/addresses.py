"""Judge one resolved IP address: may the fetcher connect to it?

The rules are an explicit table rather than `ipaddress`'s `is_private`/`is_global` flags, whose
tables changed between Python patch releases (CVE-2024-4032). IPv6 forms that carry an IPv4
address (IPv4-mapped, 6to4, Teredo, NAT64 `64:ff9b::/96`) are unwrapped first and every carried
address is judged too, so `::ffff:169.254.169.254` is the metadata address it is. This module
only classifies: it resolves no name and opens no connection.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["Category", "refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Category:
    """Why a range is special, and whether a policy may opt into it."""

    name: str
    """Words for the message: "127.0.0.1 is a {name} address"."""
    opt_in: str = ""
    """"loopback" or "private": a `FetchPolicy` flag can allow it; empty: never allowed."""


_LOOPBACK = Category("loopback", "loopback")
_PRIVATE = Category("private", "private")
_SHARED = Category("shared (carrier-grade NAT)", "private")
_LINK_LOCAL = Category("link-local")
_THIS_NETWORK = Category('"this network" (0.0.0.0/8)')
_UNSPECIFIED = Category("unspecified")
_MULTICAST = Category("multicast")
_RESERVED = Category("reserved")
_DOCUMENTATION = Category("documentation")

# Most specific first: the first match names the category.
_TABLE: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Category], ...] = tuple(
    (ipaddress.ip_network(network), category)
    for network, category in (
        ("0.0.0.0/8", _THIS_NETWORK),
        ("127.0.0.0/8", _LOOPBACK),
        ("10.0.0.0/8", _PRIVATE),
        ("172.16.0.0/12", _PRIVATE),
        ("192.168.0.0/16", _PRIVATE),
        ("100.64.0.0/10", _SHARED),
        ("169.254.0.0/16", _LINK_LOCAL),
        ("192.0.0.0/24", _RESERVED),
        ("192.0.2.0/24", _DOCUMENTATION),
        ("198.51.100.0/24", _DOCUMENTATION),
        ("203.0.113.0/24", _DOCUMENTATION),
        ("198.18.0.0/15", _RESERVED),
        ("224.0.0.0/4", _MULTICAST),
        ("240.0.0.0/4", _RESERVED),
        ("::/128", _UNSPECIFIED),
        ("::1/128", _LOOPBACK),
        # IPv4-compatible (deprecated) and IPv4-translated forms: nothing legitimate uses them.
        ("::/96", _RESERVED),
        ("::ffff:0:0:0/96", _RESERVED),
        ("64:ff9b:1::/48", _PRIVATE),
        ("100::/64", _RESERVED),
        ("2001:db8::/32", _DOCUMENTATION),
        ("fc00::/7", _PRIVATE),
        ("fe80::/10", _LINK_LOCAL),
        ("fec0::/10", _RESERVED),
        ("ff00::/8", _MULTICAST),
    )
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _carried(address: IPAddress) -> list[IPAddress]:
    """Return `address` and every IPv4 address it carries (recursively, de-duplicated)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner: list[IPAddress] = []
        if address.ipv4_mapped is not None:
            inner.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            inner.append(address.sixtofour)
        if address.teredo is not None:
            inner.extend(address.teredo)
        if address in _NAT64:
            inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for item in inner:
            found.extend(a for a in _carried(item) if a not in found)
    return found


def _category(address: IPAddress) -> Category | None:
    for network, category in _TABLE:
        if address.version == network.version and address in network:
            return category
    return None


def refusal(address: str, *, allow_loopback: bool = False, allow_private: bool = False) -> str:
    """Return why the fetcher must not connect to `address`, or "" when it may.

    `address` is a resolved numeric address as `getaddrinfo` returns it (an IPv6 zone suffix is
    refused: a zone only makes sense for link-local addresses). The reason names the address
    judged, for example "127.0.0.1 is a loopback address".
    """
    if "%" in address:
        return f"{address} is an IPv6 address with a zone"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    for candidate in _carried(parsed):
        category = _category(candidate)
        if category is None:
            continue
        if category.opt_in == "loopback" and allow_loopback:
            continue
        if category.opt_in == "private" and allow_private:
            continue
        shown = str(candidate) if candidate == parsed else f"{parsed} (IPv4 {candidate})"
        article = "an" if category.name[0] in "aeiou" else "a"
        return f"{shown} is {article} {category.name} address"
    return ""
