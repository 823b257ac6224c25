"""One private directory per preview, holding every unit's work directory, and nothing left behind.

Renders copy repository files into work directories; a preview that is killed must not leave
those copies (of a private repository) on the machine. Each preview works below one directory,
`tidegate-work-*` in the temporary directory, which it removes when it ends, also when it ends
by SIGTERM or SIGINT (the command line turns those into an orderly unwind). A SIGKILL cannot be
caught, so a process's first preview removes the directories of previews that are no longer
running: each holds an advisory lock on a file in its directory for as long as it lives, and the
kernel drops that lock when the process dies, however it died. A long-lived process (a preview
server) looks again at most once a minute: listing a busy temporary directory costs a warm
preview milliseconds, and what a killed preview left waits at most that long.

A unit's own work directory is handed to `remove_later` once its tool has run: a background
thread removes it while the preview goes on. Removing files is not free: where the file system
discards freed blocks on delete (ext4 mounted with `discard`, common on cloud disks), a unit's
few copied files took about 10 ms to remove, on the path of every render. The preview's own
directory is still removed, with whatever is left in it, when the preview ends, and the process
waits for pending removals before it exits.

This module must not touch anything outside directories it created or recognises by prefix and
lock.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["PREFIX", "Workspace", "remove_later", "remove_stale", "removed_later"]

PREFIX = "tidegate-work-"
_LOCK = ".lock"
# A directory without its lock file is either being created this very moment or was left by a
# process killed between the two steps; only the second stays that way for long.
_UNLOCKED_GRACE = 600.0
# Seconds between two looks for stale directories in one process, and when each parent was
# last looked at.
_LOOK_EVERY = 60.0
_LOOKED: dict[Path, float] = {}


class Workspace:
    """The directory one preview works in; a context manager that removes it on exit."""

    def __init__(
        self, parent: Path | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`clock` times the look for stale directories (a test moves it)."""
        self.parent = Path(parent or tempfile.gettempdir())
        self._clock = clock
        self.path: Path | None = None
        self._lock: IO[str] | None = None

    def __enter__(self) -> Path:
        now = self._clock()
        last = _LOOKED.get(self.parent)
        if last is None or now - last >= _LOOK_EVERY:
            _LOOKED[self.parent] = now
            remove_stale(self.parent)
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.parent))
        self._lock = (self.path / _LOCK).open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return self.path

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the directory and everything in it; safe to call more than once."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def remove_stale(parent: Path) -> list[Path]:
    """Remove the work directories of previews that are no longer running; return them."""
    removed = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(PREFIX) and p.is_dir()]
    except OSError:
        return []
    for directory in candidates:
        if directory.is_symlink() or not _stale(directory):
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


def _stale(directory: Path) -> bool:
    lock = directory / _LOCK
    try:
        handle = lock.open("r")
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            return time.time() - directory.stat().st_mtime > _UNLOCKED_GRACE
        return False
    except OSError:
        return False
    with handle:
        if os.stat(handle.fileno()).st_uid != os.getuid():
            return False  # someone else's: never ours to remove
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: that preview is still running
        return True


# Directories waiting for the remover thread, which starts with the first of them.
_REMOVALS: queue.Queue[Path] = queue.Queue()
_REMOVER: list[threading.Thread] = []
_REMOVER_LOCK = threading.Lock()


def remove_later(path: Path) -> None:
    """Remove a directory (and everything in it) in the background, soon."""
    with _REMOVER_LOCK:
        if not _REMOVER:
            thread = threading.Thread(target=_remove_forever, name="remover", daemon=True)
            thread.start()
            _REMOVER.append(thread)
            atexit.register(removed_later)
    _REMOVALS.put(path)


def removed_later() -> None:
    """Wait until every directory handed to `remove_later` so far is removed."""
    _REMOVALS.join()


def _remove_forever() -> None:
    while True:
        path = _REMOVALS.get()
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            _REMOVALS.task_done()


def _forget_the_remover() -> None:
    """In a forked child: the parent's thread is not there, nor are its removals the child's."""
    # Replaced once per fork, before the child has any thread of its own.
    global _REMOVALS
    _REMOVER.clear()
    _REMOVALS = queue.Queue()


os.register_at_fork(after_in_child=_forget_the_remover)
