"""Create a directory whole, once, while other threads and processes may create it too.

The directory is filled privately beside its final place and renamed there. A rename is atomic,
so no reader ever finds the directory half made, and a process killed while filling leaves only
its private copy, named with the caller's prefix. When several race, the first rename wins; the
others' renames fail because the place is no longer empty, and their copies are removed. A rename
replaces at most an empty directory, so whatever already stands at the place is kept as it is: a
caller that needs more than "a directory is there" checks it after.

This module never reads what it creates and never removes anything but its own private copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["publish_directory"]


def publish_directory(target: Path, fill: Callable[[Path], object], *, prefix: str) -> None:
    """Make `target` a directory filled by `fill`, unless a directory already stands there.

    `fill` gets an empty private directory beside `target`, named `prefix` and a random suffix;
    what it returns is ignored.

    Raises:
        OSError: the rename failed and `target` is still no directory.
        Whatever `fill` raises; `target` is then left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))
    try:
        fill(scratch)
        try:
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():  # another thread or process won the race otherwise
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
