"""Retrying calls to a code host: 5xx answers and rate limits are waited out, with a bound.

Everything else (4xx) is an answer and is raised at once. The sleep is injected so tests run
without waiting; a rate limit's reset time, when the host sends one, is honoured up to a cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["RetryPolicy", "Transient", "call_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True)
class Transient:
    """How an adapter classifies a failure: retry it, and after how long at least."""

    retry: bool
    wait: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and the exponential backoff between them."""

    attempts: int = 5
    first_wait: float = 0.5
    max_wait: float = 30.0
    sleep: Callable[[float], None] = time.sleep


def call_with_retries(
    call: Callable[[], T],
    classify: Callable[[Exception], Transient],
    policy: RetryPolicy,
) -> T:
    """Run `call`, retrying transient failures; the last failure is raised unchanged."""
    wait = policy.first_wait
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as exc:
            verdict = classify(exc)
            if not verdict.retry or attempt == policy.attempts:
                raise
            policy.sleep(min(policy.max_wait, max(wait, verdict.wait)))
            wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
