"""Where a production process finds kustomize and helm: the configured path, else PATH.

The operator names a tool by a flag or an environment variable (a path, or a bare name looked
up on PATH); without either, the tool's own name is looked up on PATH. Nothing here builds or
downloads a tool, and nothing reaches the development toolchain: a service must start the same
way on any machine, or fail at once with an error naming the tool and how to give it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.errors import InputError

__all__ = ["locate"]


def locate(name: str, configured: str | Path | None, *, setting: str) -> Path:
    """Return the absolute path of tool `name`.

    Args:
        name: The tool (`kustomize`, `helm`), looked up on PATH when nothing is configured.
        configured: The operator's choice: a path, a bare name looked up on PATH, or None.
        setting: How the operator configures it (`--kustomize or TIDEGATE_KUSTOMIZE`), for the
            error message.

    Raises:
        InputError: the configured path is not an executable file, or the tool is not on PATH.
    """
    wanted = str(configured) if configured not in (None, "") else name
    if os.sep not in wanted:
        found = shutil.which(wanted)
        if found is None:
            raise InputError(
                f"{name}: no {wanted!r} on PATH; install {name} or give its path with {setting}"
            )
        return Path(found).absolute()
    path = Path(wanted).absolute()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise InputError(f"{name}: {wanted} ({setting}) is not an executable file")
    return path
