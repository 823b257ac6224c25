"""The work queue between the informers and the workers, with client-go's workqueue rules.

- A key is in the queue at most once: adding a queued key again is a no-op (dedupe).
- A key handed to a worker is "processing" until `done`; adding it meanwhile marks it dirty and
  it is queued again only when `done` is called, so one object is never reconciled by two
  workers at once, and a change seen during a reconcile is not lost.
- `add_after` queues a key once its delay has passed (an earlier add wins over a later one).
- `add_rate_limited` waits an exponential backoff per key (`min_delay` * 2^failures, capped at
  `max_delay`: Flux's 750ms and 15m); `forget` resets it after a success.

Keys are opaque hashables. This module knows nothing of Kubernetes and never logs.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Backoff", "WorkQueue", "jittered"]

K = TypeVar("K", bound=Hashable)


class Backoff(Generic[K]):
    """Per-key exponential backoff."""

    def __init__(self, min_delay: float = 0.75, max_delay: float = 900.0) -> None:
        self.min_delay, self.max_delay = min_delay, max_delay
        self._failures: dict[K, int] = {}
        self._lock = threading.Lock()

    def when(self, key: K) -> float:
        """The delay before the next try of `key`, counting this failure."""
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        # 2**failures overflows a float past ~1000 failures; the cap is reached long before.
        return min(self.min_delay * 2.0 ** min(failures, 64), self.max_delay)

    def failures(self, key: K) -> int:
        """How many failures in a row `key` has had."""
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        """Reset `key` after a success."""
        with self._lock:
            self._failures.pop(key, None)


def jittered(
    seconds: float, percentage: float = 5.0, rand: Callable[[], float] = random.random
) -> float:
    """`seconds` spread by up to +/- `percentage`% (Flux's --interval-jitter-percentage)."""
    spread = seconds * percentage / 100.0
    return seconds + spread * (2.0 * rand() - 1.0)


class WorkQueue(Generic[K]):
    """A deduplicating, delaying, rate-limited FIFO of keys."""

    def __init__(
        self, backoff: Backoff[K] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.backoff: Backoff[K] = backoff or Backoff()
        self._clock = clock
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._order = itertools.count()
        self._shut = False
        self._cond = threading.Condition()

    def add(self, key: K) -> None:
        """Queue `key` now (no-op when already queued; deferred while it is processing)."""
        with self._cond:
            self._add(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            due = self._clock() + delay
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._waiting, (due, next(self._order), key))
            self._cond.notify_all()

    def add_rate_limited(self, key: K) -> float:
        """Queue `key` after its backoff; return the delay."""
        delay = self.backoff.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset the backoff of `key`."""
        self.backoff.forget(key)

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process, or None on shutdown or after `timeout` seconds."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                self._promote()
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if self._shut:
                    return None
                now = self._clock()
                if deadline is not None and now >= deadline:
                    return None
                waits = [due - now for due, _, _ in self._waiting[:1]]
                if deadline is not None:
                    waits.append(deadline - now)
                self._cond.wait(max(0.0, min(waits)) if waits else None)

    def done(self, key: K) -> None:
        """`key` is processed; queue it again if it was added meanwhile."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add(key)

    def shut_down(self) -> None:
        """Wake every `get`; they return None once the queue is drained of ready keys."""
        with self._cond:
            self._shut = True
            self._queue.clear()
            self._queued.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def waiting(self) -> int:
        """Keys waiting for their delay."""
        with self._cond:
            return len(self._due)

    def _add(self, key: K) -> None:
        if self._shut:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._cond.notify()

    def _promote(self) -> None:
        now = self._clock()
        while self._waiting and self._waiting[0][0] <= now:
            due, _, key = heapq.heappop(self._waiting)
            # A superseded (later) entry of a key re-added earlier is stale: skip it.
            if self._due.get(key) != due:
                continue
            del self._due[key]
            self._add(key)
