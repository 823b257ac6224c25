"""Go-compatible regular expressions for Alert inclusion and exclusion lists.

Flux compiles these with Go's `regexp` package (RE2 syntax, linear time); `google-re2` gives the
same syntax and the same guarantee against catastrophic backtracking on a hostile message.
"""

from __future__ import annotations

import functools
from typing import Any

import re2  # type: ignore[import-untyped]

__all__ = ["compile_regex"]


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str) -> Any | None:
    """The compiled pattern, or None when RE2 refuses it."""
    try:
        return re2.compile(pattern)
    except Exception:  # re2 raises its own error type for a pattern it refuses
        return None
