"""Go's `time.Duration` syntax as Flux's fields are written: parsing `1m30s`, `1.5h`, `250ms`.

Flux's `interval`, `retryInterval` and `timeout` use Go's syntax, so the reconciler reads exactly
that (`reconciler.status.go_duration` prints it back). A pure function; no clock.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`90s`, `1m30s`, `1.5h`, `0`); ValueError if it is not one."""
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total, position = 0.0, 0
    for match in _PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(body):
        raise ValueError(f"invalid duration {text!r}")
    return sign * total
