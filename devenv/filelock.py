"""An exclusive lock on a file, held for a block: one process at a time builds or starts a thing.

The tool builds, the container image and the detached control planes live in caches shared by
every process of the machine (test workers, parallel checkouts); each is made under the lock of
its own lock file. The lock is `flock`, so it goes with the process that held it, however that
process ends. This module only locks: it never removes a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

__all__ = ["exclusive"]


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created, with its directory, if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
