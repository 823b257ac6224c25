"""Artifact storage: a directory laid out as source-controller's, and the URLs it is served at.

An artifact lives at `gitrepository/<namespace>/<name>/<digest hex>.tar.gz` below the root and is
served at `<base URL>/<that path>` (see `reconciler.source.server`). Names are Kubernetes object
names, checked here, so a path never climbs out of the root. A new artifact is written to a
temporary file and renamed into place, so a reader never sees half of one; storing the same
content again only marks it newest. Garbage collection keeps the newest few artifacts of an
object (source-controller keeps 2 by default; we keep 3), never the one just stored, so a
Kustomization downloading the previous URL while a new one lands still gets it.

It never serves anything and never follows a link.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.errors import InputError

__all__ = ["Storage", "StoredArtifact"]

# A namespace or object name as the API accepts them (DNS subdomain).
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")
_ARTIFACT = re.compile(r"[0-9a-f]{64}\.tar\.gz")


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact in storage."""

    path: str
    """Relative to the storage root, `gitrepository/<ns>/<name>/<hex>.tar.gz`."""
    url: str
    digest: str
    """`sha256:<hex>`."""
    size: int


class Storage:
    """The artifact directory of one controller."""

    def __init__(self, root: Path, base_url: str, *, keep: int = 3) -> None:
        """Use `root` for artifacts.

        Args:
            root: The directory artifacts are stored under.
            base_url: Where the artifact server is reached, such as
                `http://source-controller.flux-system.svc.cluster.local.`.
            keep: Artifacts kept per object by garbage collection (at least 1).
        """
        self.root = root
        self.base_url = base_url.rstrip("/")
        self.keep = max(1, keep)

    def directory(self, kind: str, namespace: str, name: str) -> Path:
        """The directory of one object's artifacts."""
        for value in (kind, namespace, name):
            if not _NAME.fullmatch(value) or ".." in value:
                raise InputError(f"{value[:80]!r} is not a valid object name")
        return self.root / kind / namespace / name

    def url_of(self, path: str) -> str:
        """The URL an artifact path is served at."""
        return f"{self.base_url}/{path}"

    def store(
        self, kind: str, namespace: str, name: str, write: Callable[[IO[bytes]], object]
    ) -> StoredArtifact:
        """Write an artifact with `write`, name it by its digest, and return where it is."""
        directory = self.directory(kind, namespace, name)
        directory.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".incoming-", dir=directory)
        try:
            with os.fdopen(descriptor, "w+b") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
                out.seek(0)
                digest = _sha256(out)
            final = directory / f"{digest}.tar.gz"
            os.chmod(temporary, 0o644)
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        # Same content stored again: it is the newest now, for garbage collection.
        os.utime(final)
        path = final.relative_to(self.root).as_posix()
        return StoredArtifact(path, self.url_of(path), f"sha256:{digest}", size)

    def exists(self, path: str) -> bool:
        """Whether the artifact at `path` (relative, as in `status.artifact.path`) is stored."""
        candidate = self.root / path
        parts = Path(path).parts
        return (
            len(parts) == 4
            and ".." not in parts
            and _ARTIFACT.fullmatch(parts[-1]) is not None
            and candidate.is_file()
            and not candidate.is_symlink()
        )

    def collect(self, kind: str, namespace: str, name: str, current: str) -> list[str]:
        """Remove all but the newest `keep` artifacts of an object, never `current`.

        Returns:
            The paths removed.
        """
        directory = self.directory(kind, namespace, name)
        if not directory.is_dir():
            return []
        artifacts = [
            entry
            for entry in directory.iterdir()
            if _ARTIFACT.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink()
        ]
        artifacts.sort(key=lambda entry: entry.stat().st_mtime_ns, reverse=True)
        removed = []
        kept = 0
        for entry in artifacts:
            path = entry.relative_to(self.root).as_posix()
            if path == current or kept < self.keep - 1:
                kept += path != current
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
            removed.append(path)
        return removed

    def remove_all(self, kind: str, namespace: str, name: str) -> None:
        """Remove every artifact of an object (it was deleted)."""
        directory = self.directory(kind, namespace, name)
        if directory.is_dir():
            for entry in directory.iterdir():
                with contextlib.suppress(OSError):
                    entry.unlink()
            with contextlib.suppress(OSError):
                directory.rmdir()


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 16):
        digest.update(chunk)
    return digest.hexdigest()
