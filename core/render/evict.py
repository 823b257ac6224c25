"""Keep the render cache under a byte budget by removing its least recently used entries.

The cache (`core.render.cache`) marks an entry used by setting its file's mtime when a lookup
finds it, so the oldest mtime is the least recently used entry (atime is not kept on most mounts).
A render's index and its bodies file go together, index first: a reader that then finds no index
gets a miss and renders again. Receipt lists and revision memos are single files; a missing one is
a miss as well.

The chart and OCI downloads share the budget and the rules (`core.host.usage` marks them on a
hit). Each file under `charts/` (an archive, or a pointer from an exact version to one) and under
`oci/manifests/` and `oci/blobs/` is one entry; each directory under `oci/unpacked/` is one
entry, marked through the directory's own mtime, and is renamed out of the way before it is
deleted, so no reader ever finds it half removed: a reader that finds none unpacks the blob again,
and one that finds no archive, manifest or blob downloads it again. Files a writer has not
renamed into place yet (`.part-*`, `.unpack-*`) are counted too and, like any entry, kept while
recent: only what a crashed process left behind goes.

Other previews may run on the same directory in other processes. An entry used within the last
`grace` seconds is never removed, so a preview that found an entry keeps it until it is done with
it; the budget may be exceeded by what was used that recently.

This module removes only entries under `renders/`, `receipts/`, `revisions/`, `charts/` and
`oci/`; it never touches the masking key, the tool digests (`tools/`) or any other file of the
cache directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field

from core.host.usage import GRACE_SECONDS

__all__ = ["EVICTED_DIRS", "GRACE_SECONDS", "Eviction", "enforce"]

EVICTED_DIRS = ("renders", "receipts", "revisions", "charts", "oci")
_UNPACKED = os.path.join("oci", "unpacked")
"""Where each entry is a whole directory (an unpacked artifact), not a file."""
_BODIES = ".bodies.json"
_GONE = ".evict-"


@dataclass
class _Entry:
    paths: list[str] = field(default_factory=list)
    size: int = 0
    used: float = 0.0
    directory: bool = False


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
        if entry.directory:
            _remove_directory(entry.paths[0])
        else:
            for path in entry.paths:
                with contextlib.suppress(FileNotFoundError):  # another pass got there first
                    os.unlink(path)
        total -= entry.size
        removed += 1
    return Eviction(before, total, removed)


def _scan(root: str) -> dict[str, _Entry]:
    """Entries by key: a render's index and bodies share the index's path as key."""
    entries: dict[str, _Entry] = {}
    for top in EVICTED_DIRS:
        for directory, dirs, names in os.walk(os.path.join(root, top)):
            if os.path.relpath(directory, root) == _UNPACKED:
                for name in dirs:
                    _add_tree(entries, os.path.join(directory, name))
                dirs.clear()  # each one is a single entry, sized above
            for name in names:
                _add_file(entries, os.path.join(directory, name), name)
    return entries


def _add_file(entries: dict[str, _Entry], path: str, name: str) -> None:
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    key = path[: -len(_BODIES)] + ".json" if name.endswith(_BODIES) else path
    entry = entries.setdefault(key, _Entry())
    # The index is the file a lookup marks; it goes first so no reader finds an index without
    # its bodies.
    if key == path:
        entry.paths.insert(0, path)
        entry.used = status.st_mtime
    else:
        entry.paths.append(path)
        entry.used = entry.used or status.st_mtime
    entry.size += status.st_size


def _add_tree(entries: dict[str, _Entry], path: str) -> None:
    """One unpacked artifact: its files' bytes, used when its directory was last marked."""
    try:
        used = os.lstat(path).st_mtime
    except FileNotFoundError:
        return
    size = 0
    for directory, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                size += os.lstat(os.path.join(directory, name)).st_size
    entries[path] = _Entry([path], size, used, directory=True)


def _remove_directory(path: str) -> None:
    """Rename first, so the entry's name is gone at once and never names half a directory."""
    parent, name = os.path.split(path)
    doomed = path
    if not name.startswith("."):
        doomed = os.path.join(parent, f"{_GONE}{secrets.token_hex(8)}")
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return  # another pass got there first
    shutil.rmtree(doomed, ignore_errors=True)


def _used_since(entry: _Entry, recent: float) -> bool:
    """Whether the entry was marked used after the scan (checked right before removal)."""
    try:
        return os.stat(entry.paths[0]).st_mtime > recent
    except FileNotFoundError:
        return False
