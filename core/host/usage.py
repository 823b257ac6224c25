"""Mark an on-disk cache entry used, by its modification time, so a byte budget keeps it.

The render cache's eviction (`core.render.evict`) removes the entries with the oldest mtime
first and never one marked within `GRACE_SECONDS`. A download cache (charts, OCI manifests,
blobs and unpacked artifacts) calls `mark_used` on every hit, right before it hands the entry
out: the entry then survives every eviction pass for the grace period, in this process and in
any other sharing the directory. Marking is a `utime`, done at most once per entry per
`MARK_EVERY` in a process; in between, a hit only checks that the entry is still there.

This module only sets modification times and checks existence; it never reads, writes or
removes an entry.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

__all__ = ["GRACE_SECONDS", "MARK_EVERY", "mark_used"]

GRACE_SECONDS = 15 * 60.0
"""Entries used this recently are never evicted: longer than a preview's default time budget."""
MARK_EVERY = GRACE_SECONDS / 4
"""Re-mark an entry after this long, well inside the grace, so an entry a long-lived process
keeps using is never the least recently used on disk."""
_REMEMBERED = 1 << 16  # marks kept per process; forgetting one only costs one more utime

_lock = threading.Lock()
_marked: dict[str, float] = {}


def mark_used(path: Path | str) -> bool:
    """Mark a cache file or directory used; False when it is not there (a miss).

    A caller treats False as a miss and downloads again, so an entry evicted between two hits
    is fetched again, never read half-removed.
    """
    key = os.fspath(path)
    now = time.monotonic()
    with _lock:
        last = _marked.get(key)
        fresh = last is not None and now - last < MARK_EVERY
        if not fresh:
            if len(_marked) >= _REMEMBERED:
                _marked.clear()
            _marked[key] = now
    if fresh:
        return os.path.exists(key)
    try:
        os.utime(key)
    except FileNotFoundError:
        with _lock:
            _marked.pop(key, None)
        return False
    except OSError:
        # A read-only cache still serves its entries; it just cannot rank them.
        return os.path.exists(key)
    return True
