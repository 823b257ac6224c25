"""Keep the render cache under a byte budget by removing its least recently used entries.

The cache (`core.render.cache`) marks an entry used by setting its file's mtime when a lookup
finds it, so the oldest mtime is the least recently used entry (atime is not kept on most mounts).
A render's index and its bodies file go together, index first: a reader that then finds no index
gets a miss and renders again. Receipt lists and revision memos are single files; a missing one is
a miss as well.

Other previews may run on the same directory in other processes. An entry used within the last
`grace` seconds is never removed, so a preview that found an index keeps its bodies until it is
done with them; the budget may be exceeded by what was used that recently.

This module removes only files under `renders/`, `receipts/` and `revisions/`; it never touches
the masking key, the tool digests, the chart and OCI downloads (`charts/`, `oci/`) or any
other file of the cache directory.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

__all__ = ["EVICTED_DIRS", "GRACE_SECONDS", "Eviction", "enforce"]

EVICTED_DIRS = ("renders", "receipts", "revisions")
GRACE_SECONDS = 15 * 60.0
"""Entries used this recently stay: longer than a preview's default time budget."""
_BODIES = ".bodies.json"


@dataclass
class _Entry:
    paths: list[str] = field(default_factory=list)
    size: int = 0
    used: float = 0.0


@dataclass(frozen=True)
class Eviction:
    """What one pass found and removed (bytes of entry files)."""

    before: int
    after: int
    removed: int


def enforce(root: str, max_bytes: int, *, grace: float = GRACE_SECONDS) -> Eviction:
    """Remove least recently used entries under `root` until they fit in `max_bytes`."""
    entries = _scan(root)
    total = sum(entry.size for entry in entries.values())
    before, removed = total, 0
    recent = time.time() - grace
    for entry in sorted(entries.values(), key=lambda e: e.used):
        if total <= max_bytes:
            break
        if entry.used > recent or _used_since(entry, recent):
            continue  # used meanwhile, here or in another process
        for path in entry.paths:
            with contextlib.suppress(FileNotFoundError):  # another pass got there first
                os.unlink(path)
        total -= entry.size
        removed += 1
    return Eviction(before, total, removed)


def _scan(root: str) -> dict[str, _Entry]:
    """Entry files by entry: a render's index and bodies share the index's path as key."""
    entries: dict[str, _Entry] = {}
    for top in EVICTED_DIRS:
        for directory, _dirs, names in os.walk(os.path.join(root, top)):
            for name in names:
                path = os.path.join(directory, name)
                try:
                    status = os.lstat(path)
                except FileNotFoundError:
                    continue
                key = path[: -len(_BODIES)] + ".json" if name.endswith(_BODIES) else path
                entry = entries.setdefault(key, _Entry())
                # The index is the file a lookup marks; it goes first so no reader finds an
                # index without its bodies.
                if key == path:
                    entry.paths.insert(0, path)
                    entry.used = status.st_mtime
                else:
                    entry.paths.append(path)
                    entry.used = entry.used or status.st_mtime
                entry.size += status.st_size
    return entries


def _used_since(entry: _Entry, recent: float) -> bool:
    """Whether the entry was marked used after the scan (checked right before removal)."""
    try:
        return os.stat(entry.paths[0]).st_mtime > recent
    except FileNotFoundError:
        return False
