"""The Kubernetes CEL library, for user rules: the functions ValidatingAdmissionPolicy offers.

Implemented (names, arguments and results as in Kubernetes 1.33; see docs/policy-gate.md):

- lists: `l.isSorted()`, `l.sum()`, `l.min()`, `l.max()`, `l.indexOf(x)`, `l.lastIndexOf(x)`;
- regex: `s.find(re)`, `s.findAll(re)`, `s.findAll(re, n)`;
- URLs: `url(s)`, `isURL(s)`, `u.getScheme()`, `getHost()`, `getHostname()`, `getPort()`,
  `getEscapedPath()`, `getQuery()`;
- quantities: `quantity(s)`, `isQuantity(s)`, `q.isGreaterThan(q)`, `isLessThan`, `compareTo`,
  `add(q|int)`, `sub(q|int)`, `asInteger()`, `isInteger()`, `asApproximateFloat()`, `sign()`;
- semantic versions: `semver(s[, normalize])`, `isSemver(s[, normalize])`, `v.major()`,
  `minor()`, `patch()`, `isGreaterThan`, `isLessThan`, `compareTo`;
- IP addresses and CIDRs: `ip(s)`, `isIP(s)`, `a.family()`, `isUnspecified()`, `isLoopback()`,
  `isLinkLocalMulticast()`, `isLinkLocalUnicast()`, `isGlobalUnicast()`, `cidr(s)`,
  `isCIDR(s)`, `c.containsIP(ip|s)`, `containsCIDR(cidr|s)`, `prefixLength()`, `c.ip()`,
  `masked()`;
- sets: `sets.contains(a, b)`, `sets.equivalent(a, b)`, `sets.intersects(a, b)`;
- from the engine's extensions: strings (`format`, `lowerAscii`, `split`, `join`, ...),
  optionals (`?.`, `orValue`), encoders (`base64`), math, `cel.bind`.

Not offered: `authorizer` (nobody is authorized before a merge) and anything else Kubernetes does
not define; an expression that uses an unknown function fails to compile when its policy loads.

Values of the library types are tagged maps (`{"@k8s": "quantity", "v": ...}`) whose canonical
`v` makes `==` mean what Kubernetes means (`quantity("1Gi") == quantity("1024Mi")`). Regular
expressions run on RE2, as in Kubernetes: the same syntax, and linear time whatever the text, so
a hostile object cannot make a pattern backtrack. Pure functions.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import re2  # type: ignore[import-untyped]
from cel_expr_python import cel

__all__ = ["extension"]

Opaque = dict[str, Any]
_TAG = "@k8s"
_MAX_REGEX = 1000
_MAX_INT = 2**63 - 1


class LibraryError(ValueError):
    """A library function was called with an argument it rejects (an error value in CEL)."""


def _tag(kind: str, value: Any, **extra: Any) -> Opaque:
    return {_TAG: kind, "v": value, **extra}


def _is(value: Any, kind: str) -> bool:
    return isinstance(value, Mapping) and value.get(_TAG) == kind


def _kind(value: Any) -> str:
    return str(value.get(_TAG)) if isinstance(value, Mapping) else ""


# Lists.


def _comparable(items: Sequence[Any]) -> list[Any]:
    """Return the elements if they are all strings or all numbers (not booleans)."""
    values = list(items)
    strings = all(isinstance(v, str) for v in values)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not (strings or numbers):
        raise LibraryError("list elements must all be strings or all be numbers")
    return values


def _is_sorted(items: Sequence[Any]) -> bool:
    values = _comparable(items)
    return all(a <= b for a, b in itertools.pairwise(values))


def _sum(items: Sequence[Any]) -> Any:
    values = _comparable(items)
    total: Any = 0
    for value in values:
        if isinstance(value, str):
            raise LibraryError("sum() needs numbers")
        total += value
    if isinstance(total, int) and not -_MAX_INT - 1 <= total <= _MAX_INT:
        raise LibraryError("integer overflow")
    return total


def _min(items: Sequence[Any]) -> Any:
    values = _comparable(items)
    if not values:
        raise LibraryError("min called on empty list")
    return min(values)


def _max(items: Sequence[Any]) -> Any:
    values = _comparable(items)
    if not values:
        raise LibraryError("max called on empty list")
    return max(values)


def _index_of(items: Sequence[Any], item: Any) -> int:
    for index, value in enumerate(items):
        if value == item and type(value) is type(item):
            return index
    return -1


def _last_index_of(items: Sequence[Any], item: Any) -> int:
    for index in range(len(items) - 1, -1, -1):
        if items[index] == item and type(items[index]) is type(item):
            return index
    return -1


# Regex.

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is an error value, not a line on stderr


@cache
def _regex(pattern: str) -> Any:
    if len(pattern) > _MAX_REGEX:
        raise LibraryError(f"regular expression is longer than {_MAX_REGEX} characters")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise LibraryError(f"invalid regular expression: {detail}") from None


def _find(text: str, pattern: str) -> str:
    match = _regex(pattern).search(text)
    return match.group(0) if match else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    found = [m.group(0) for m in _regex(pattern).finditer(text)]
    return found if limit < 0 else found[:limit]


# URLs (Go's url.ParseRequestURI: an absolute URL, or an absolute path).


def _parse_url(text: str) -> Opaque:
    if not text or any(c in text for c in " \t\n") or "#" in text:
        raise LibraryError(f"URL parse error during conversion from string: {text}")
    parts = urlsplit(text)
    if not parts.scheme and not text.startswith("/"):
        raise LibraryError(f"URL parse error during conversion from string: {text}")
    return _tag("url", text)


def _url(value: Any) -> Any:
    if not _is(value, "url"):
        raise LibraryError("not a URL")
    return urlsplit(str(value["v"]))


def _is_url(text: str) -> bool:
    try:
        _parse_url(text)
    except LibraryError:
        return False
    return True


def _get_host(value: Any) -> str:
    return str(_url(value).netloc.rpartition("@")[2])


def _get_hostname(value: Any) -> str:
    return str(_url(value).hostname or "")


def _get_port(value: Any) -> str:
    host = _get_host(value)
    if host.startswith("["):
        _, _, rest = host.partition("]")
        return rest[1:] if rest.startswith(":") else ""
    return host.rpartition(":")[2] if ":" in host else ""


def _get_query(value: Any) -> dict[str, list[str]]:
    return {k: list(v) for k, v in parse_qs(_url(value).query, keep_blank_values=True).items()}


# Quantities (Kubernetes resource.Quantity).

_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


def _parse_quantity(text: str) -> Fraction:
    match = _QUANTITY.match(text)
    if not match:
        raise LibraryError(f"quantities must match the regular expression: {text}")
    number, suffix = match.group(1), match.group(2) or ""
    value = Fraction(number)
    if suffix in _BINARY:
        value *= _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= _DECIMAL[suffix]
    elif suffix:
        exponent = int(suffix[1:])
        if abs(exponent) > 100:
            raise LibraryError(f"quantity exponent out of range: {text}")
        value *= Fraction(10) ** exponent
    return value


def _quantity_of(value: Fraction) -> Opaque:
    return _tag("quantity", f"{value.numerator}/{value.denominator}")


def _quantity(text: str) -> Opaque:
    return _quantity_of(_parse_quantity(text))


def _is_quantity(text: str) -> bool:
    try:
        _parse_quantity(text)
    except LibraryError:
        return False
    return True


def _q(value: Any) -> Fraction:
    if isinstance(value, bool):
        raise LibraryError("not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if not _is(value, "quantity"):
        raise LibraryError("not a quantity")
    return Fraction(str(value["v"]))


def _as_integer(value: Any) -> int:
    number = _q(value)
    if number.denominator != 1 or not -_MAX_INT - 1 <= number.numerator <= _MAX_INT:
        raise LibraryError("cannot convert value to integer")
    return number.numerator


def _is_integer(value: Any) -> bool:
    number = _q(value)
    return number.denominator == 1 and -_MAX_INT - 1 <= number.numerator <= _MAX_INT


def _sign(value: Any) -> int:
    number = _q(value)
    return (number > 0) - (number < 0)


# Semantic versions (blang/semver, as Kubernetes uses it).

_SEMVER = re.compile(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def _normalize_semver(text: str) -> str:
    """Normalize as Kubernetes does: no `v` prefix, missing minor or patch as 0, no leading 0s."""
    match = re.match(r"^([0-9.]+)(.*)$", text.removeprefix("v"))
    if not match:
        return text
    core, rest = match.groups()
    numbers = core.split(".")
    if len(numbers) > 3 or not all(numbers):
        return text
    numbers = [n.lstrip("0") or "0" for n in numbers] + ["0"] * (3 - len(numbers))
    return ".".join(numbers) + rest


def _parse_semver(text: str, normalize: bool = False) -> tuple[int, int, int, str]:
    candidate = _normalize_semver(text) if normalize else text
    match = _SEMVER.match(candidate)
    if not match:
        raise LibraryError(f"could not parse semver: {text}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(4) or ""


def _semver(text: str, normalize: bool = False) -> Opaque:
    major, minor, patch, pre = _parse_semver(text, normalize)
    return _tag("semver", f"{major}.{minor}.{patch}{'-' + pre if pre else ''}")


def _is_semver(text: str, normalize: bool = False) -> bool:
    try:
        _parse_semver(text, normalize)
    except LibraryError:
        return False
    return True


def _sv(value: Any) -> tuple[int, int, int, str]:
    if not _is(value, "semver"):
        raise LibraryError("not a semver")
    return _parse_semver(str(value["v"]))


def _pre_key(pre: str) -> tuple[Any, ...]:
    if not pre:
        return ((2,),)  # a release sorts after every pre-release of it
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))


def _semver_key(value: Any) -> tuple[Any, ...]:
    major, minor, patch, pre = _sv(value)
    return (major, minor, patch, _pre_key(pre))


# Comparison, shared by quantities and versions.


def _compare(a: Any, b: Any) -> int:
    kind = _kind(a)
    if kind == "quantity":
        x, y = _q(a), _q(b)
        return (x > y) - (x < y)
    if kind == "semver" and _kind(b) == "semver":
        ka, kb = _semver_key(a), _semver_key(b)
        return (ka > kb) - (ka < kb)
    raise LibraryError("compareTo needs two quantities or two semvers")


def _add(a: Any, b: Any) -> Opaque:
    return _quantity_of(_q(a) + _q(b))


def _sub(a: Any, b: Any) -> Opaque:
    return _quantity_of(_q(a) - _q(b))


# IP addresses and CIDRs.


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise LibraryError(
            f"IP Address {text!r} parse error during conversion from string"
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and (address.ipv4_mapped or address.scope_id):
        raise LibraryError(f"IPv4-mapped and zoned IPv6 addresses are not allowed: {text}")
    return address


def _ip(text: str) -> Opaque:
    return _tag("ip", str(_parse_ip(text)))


def _is_ip(text: str) -> bool:
    try:
        _parse_ip(text)
    except LibraryError:
        return False
    return True


def _addr(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, str):
        return _parse_ip(value)
    if not _is(value, "ip"):
        raise LibraryError("not an IP address")
    return ipaddress.ip_address(str(value["v"]))


def _parse_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if "/" not in text:
        raise LibraryError(f"network address parse error during conversion from string: {text}")
    address, _, _prefix = text.partition("/")
    _parse_ip(address)
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise LibraryError(
            f"network address parse error during conversion from string: {text}"
        ) from None


def _cidr(text: str) -> Opaque:
    return _tag("cidr", str(_parse_cidr(text)))


def _is_cidr(text: str) -> bool:
    try:
        _parse_cidr(text)
    except LibraryError:
        return False
    return True


def _net(value: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if isinstance(value, str):
        return _parse_cidr(value)
    if not _is(value, "cidr"):
        raise LibraryError("not a CIDR")
    return ipaddress.ip_interface(str(value["v"]))


def _contains_ip(value: Any, address: Any) -> bool:
    network = _net(value).network
    target = _addr(address)
    return target.version == network.version and target in network


def _contains_cidr(value: Any, other: Any) -> bool:
    outer, inner = _net(value).network, _net(other).network
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _cidr_or_ip(value: Any) -> Opaque:
    """`ip(string)` and `cidr.ip()` share a name: dispatch on the argument."""
    if isinstance(value, str):
        return _ip(value)
    return _tag("ip", str(_net(value).ip))


# Sets.


def _sets_contains(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return all(any(x == y and type(x) is type(y) for y in a) for x in b)


def _sets_equivalent(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return _sets_contains(a, b) and _sets_contains(b, a)


def _sets_intersects(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return any(any(x == y and type(x) is type(y) for y in a) for x in b)


# Declarations.

T = cel.Type
_LIST = T.List(T.DYN)
_MAP = T.Map(T.STRING, T.DYN)


def _member(name: str, result: Any, params: Sequence[Any], impl: Callable[..., Any]) -> Any:
    return cel.Overload(
        f"{name}_{len(params)}_member", result, list(params), is_member=True, impl=impl
    )


def _global(oid: str, result: Any, params: Sequence[Any], impl: Callable[..., Any]) -> Any:
    return cel.Overload(oid, result, list(params), impl=impl)


def _decls() -> list[Any]:
    m, g = _member, _global
    table: dict[str, list[Any]] = {
        "isSorted": [m("list_isSorted", T.BOOL, [_LIST], _is_sorted)],
        "sum": [m("list_sum", T.DYN, [_LIST], _sum)],
        "min": [m("list_min", T.DYN, [_LIST], _min)],
        "max": [m("list_max", T.DYN, [_LIST], _max)],
        "indexOf": [m("list_indexOf", T.INT, [_LIST, T.DYN], _index_of)],
        "lastIndexOf": [m("list_lastIndexOf", T.INT, [_LIST, T.DYN], _last_index_of)],
        "find": [m("string_find", T.STRING, [T.STRING, T.STRING], _find)],
        "findAll": [
            m("string_findAll", _LIST, [T.STRING, T.STRING], _find_all),
            m("string_findAll_n", _LIST, [T.STRING, T.STRING, T.INT], _find_all),
        ],
        "url": [g("url_string", _MAP, [T.STRING], _parse_url)],
        "isURL": [g("isURL_string", T.BOOL, [T.STRING], _is_url)],
        "getScheme": [m("url_getScheme", T.STRING, [_MAP], lambda u: _url(u).scheme)],
        "getHost": [m("url_getHost", T.STRING, [_MAP], _get_host)],
        "getHostname": [m("url_getHostname", T.STRING, [_MAP], _get_hostname)],
        "getPort": [m("url_getPort", T.STRING, [_MAP], _get_port)],
        "getEscapedPath": [m("url_getEscapedPath", T.STRING, [_MAP], lambda u: _url(u).path)],
        "getQuery": [m("url_getQuery", T.Map(T.STRING, _LIST), [_MAP], _get_query)],
        "quantity": [g("quantity_string", _MAP, [T.STRING], _quantity)],
        "isQuantity": [g("isQuantity_string", T.BOOL, [T.STRING], _is_quantity)],
        "isGreaterThan": [
            m("k8s_isGreaterThan", T.BOOL, [_MAP, _MAP], lambda a, b: _compare(a, b) > 0)
        ],
        "isLessThan": [m("k8s_isLessThan", T.BOOL, [_MAP, _MAP], lambda a, b: _compare(a, b) < 0)],
        "compareTo": [m("k8s_compareTo", T.INT, [_MAP, _MAP], _compare)],
        "add": [
            m("quantity_add", _MAP, [_MAP, _MAP], _add),
            m("quantity_add_int", _MAP, [_MAP, T.INT], _add),
        ],
        "sub": [
            m("quantity_sub", _MAP, [_MAP, _MAP], _sub),
            m("quantity_sub_int", _MAP, [_MAP, T.INT], _sub),
        ],
        "asInteger": [m("quantity_asInteger", T.INT, [_MAP], _as_integer)],
        "isInteger": [m("quantity_isInteger", T.BOOL, [_MAP], _is_integer)],
        "asApproximateFloat": [
            m("quantity_asApproximateFloat", T.DOUBLE, [_MAP], lambda q: float(_q(q)))
        ],
        "sign": [m("quantity_sign", T.INT, [_MAP], _sign)],
        "semver": [
            g("semver_string", _MAP, [T.STRING], _semver),
            g("semver_string_bool", _MAP, [T.STRING, T.BOOL], _semver),
        ],
        "isSemver": [
            g("isSemver_string", T.BOOL, [T.STRING], _is_semver),
            g("isSemver_string_bool", T.BOOL, [T.STRING, T.BOOL], _is_semver),
        ],
        "major": [m("semver_major", T.INT, [_MAP], lambda v: _sv(v)[0])],
        "minor": [m("semver_minor", T.INT, [_MAP], lambda v: _sv(v)[1])],
        "patch": [m("semver_patch", T.INT, [_MAP], lambda v: _sv(v)[2])],
        "ip": [
            g("ip_string", _MAP, [T.STRING], _cidr_or_ip),
            m("cidr_ip", _MAP, [_MAP], _cidr_or_ip),
        ],
        "isIP": [g("isIP_string", T.BOOL, [T.STRING], _is_ip)],
        "family": [m("ip_family", T.INT, [_MAP], lambda a: _addr(a).version)],
        "isUnspecified": [m("ip_isUnspecified", T.BOOL, [_MAP], lambda a: _addr(a).is_unspecified)],
        "isLoopback": [m("ip_isLoopback", T.BOOL, [_MAP], lambda a: _addr(a).is_loopback)],
        "isLinkLocalMulticast": [
            m("ip_isLinkLocalMulticast", T.BOOL, [_MAP], lambda a: _link_local_multicast(_addr(a)))
        ],
        "isLinkLocalUnicast": [
            m("ip_isLinkLocalUnicast", T.BOOL, [_MAP], lambda a: _addr(a).is_link_local)
        ],
        "isGlobalUnicast": [
            m("ip_isGlobalUnicast", T.BOOL, [_MAP], lambda a: _global_unicast(_addr(a)))
        ],
        "cidr": [g("cidr_string", _MAP, [T.STRING], _cidr)],
        "isCIDR": [g("isCIDR_string", T.BOOL, [T.STRING], _is_cidr)],
        "containsIP": [
            m("cidr_containsIP", T.BOOL, [_MAP, _MAP], _contains_ip),
            m("cidr_containsIP_string", T.BOOL, [_MAP, T.STRING], _contains_ip),
        ],
        "containsCIDR": [
            m("cidr_containsCIDR", T.BOOL, [_MAP, _MAP], _contains_cidr),
            m("cidr_containsCIDR_string", T.BOOL, [_MAP, T.STRING], _contains_cidr),
        ],
        "prefixLength": [
            m("cidr_prefixLength", T.INT, [_MAP], lambda c: _net(c).network.prefixlen)
        ],
        "masked": [m("cidr_masked", _MAP, [_MAP], lambda c: _tag("cidr", str(_net(c).network)))],
        "sets.contains": [g("sets_contains", T.BOOL, [_LIST, _LIST], _sets_contains)],
        "sets.equivalent": [g("sets_equivalent", T.BOOL, [_LIST, _LIST], _sets_equivalent)],
        "sets.intersects": [g("sets_intersects", T.BOOL, [_LIST, _LIST], _sets_intersects)],
    }
    return [cel.FunctionDecl(name, overloads) for name, overloads in table.items()]


def _link_local_multicast(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.version == 4:
        return address in ipaddress.ip_network("224.0.0.0/24")
    return address in ipaddress.ip_network("ff02::/16")


def _global_unicast(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Go's IP.IsGlobalUnicast: not unspecified, loopback, link-local, multicast or broadcast.
    if (
        address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
    ):
        return False
    return not (address.version == 4 and str(address) == "255.255.255.255")


def extension() -> Any:
    """Return the Kubernetes library as an extension for a CEL environment."""
    return cel.CelExtension("kubernetes", _decls())
