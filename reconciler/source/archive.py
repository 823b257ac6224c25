"""The artifact of a GitRepository revision: a deterministic tar.gz of its files.

The files are those of the commit's tree that Flux's ignore rules keep (`core.repo.sourceignore`:
VCS files, the defaults or the repository's `.sourceignore` files, then `spec.ignore`), read
straight from the git object store; nothing is checked out. Symbolic links and submodules are
left out, as source-controller leaves them out. The archive is the same bytes for the same files:
entries sorted by path, modification times, owners and gzip header fields zeroed, mode 0644 (0755
for executables). So its digest, `sha256:<hex>` of the tar.gz, changes exactly when the content
does, and a re-fetch of an unchanged revision stores nothing new.

The total size read is bounded; writing goes to the file object given, so the caller decides
where the bytes land (the storage writes to a temporary file and renames it into place).
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.errors import Failure, TidegateError
from core.repo.git import SYMLINK_MODE, Repository
from core.repo.sourceignore import included

__all__ = ["ArchiveError", "ArchiveSummary", "write_archive"]

_EXECUTABLE = "100755"


class ArchiveError(TidegateError):
    """The revision cannot be archived (too large, unreadable)."""

    failure = Failure.SOURCE


@dataclass(frozen=True)
class ArchiveSummary:
    """What went into an archive."""

    files: int
    content_bytes: int


def write_archive(
    repository: Path,
    commit: str,
    out: IO[bytes],
    *,
    spec_ignore: str | None,
    max_bytes: int = 512 << 20,
) -> ArchiveSummary:
    """Write the tar.gz of `commit`'s kept files to `out`.

    Raises:
        ArchiveError: the files add up to more than `max_bytes`.
    """
    with Repository(repository) as repo:
        tree = repo.tree(commit)
        files = [path for path in tree if tree.mode(path) != SYMLINK_MODE]
        kept = sorted(included(files, lambda path: repo.read_file(tree, path), spec_ignore))
        total = 0
        # mtime=0 and no file name: the gzip header carries nothing that varies.
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for path in kept:
                data = repo.read_file(tree, path)
                total += len(data)
                if total > max_bytes:
                    raise ArchiveError(
                        f"revision {commit}: the files to archive exceed {max_bytes} bytes"
                    )
                tar.addfile(_entry(path, len(data), tree.mode(path)), io.BytesIO(data))
    return ArchiveSummary(len(kept), total)


def _entry(path: str, size: int, mode: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o755 if mode == _EXECUTABLE else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
