"""The bare git mirror that the jobs of one repository fetch into, created once and whole.

Workers in several processes (and threads) may start on a repository nobody has fetched yet at
the same moment. `git init` writes `HEAD` first and the config and templates after, so a worker
that checked for `HEAD` could fetch into a half-made repository, or run `git init` over another
worker's and fail on the files it finds there. Each worker therefore makes its own repository in
a private directory and renames it into place (`core.host.publish`), so the mirror is either
absent or whole, and a worker that loses the race uses the winner's.

This module must not fetch: `app.review` does, with the job's credentials.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import TidegateError
from core.host.command import run
from core.host.publish import publish_directory

__all__ = ["ensure_mirror"]


def ensure_mirror(path: Path) -> Path:
    """The bare repository at `path`, created whole if there is none yet."""
    if (path / "HEAD").exists():
        return path
    publish_directory(
        path,
        lambda scratch: run(["git", "init", "--quiet", "--bare", str(scratch)]),
        prefix=f".{path.name}.init-",
    )
    if not (path / "HEAD").exists():
        raise TidegateError(
            f"git mirror {path.name}: the directory exists but is not a repository; "
            "remove it and the next job creates it again"
        )
    return path
