"""An unpacked source artifact read in place, as the files of a revision (`core.repo.artifacts`).

The controller predicts a newly pushed revision before it is kept in the revision store
(`revisions.RevisionStore`), so the head of that prediction is the artifact directory itself:
`unpacked_artifacts` lists it as a `Tree` whose ids are the git blob ids the store would give
the same files (regular `100644`, executable `100755`, symlink `120000` holding its target), so
the render cache, the ignore verdicts shared with the base and the plan are exactly those of the
stored revision.

Paths and modes are listed at once; a regular file is hashed only when its id is asked for (a
`core.repo.git.Listing`): when a build reads it, or when the render cache checks the files an
earlier build of the unit read. So predicting the head costs what the unit reads, not what the
artifact holds. A file's content is read when a build reads it (`read_blob`), and checked
against the id it was given then: a file that changed meanwhile is refused, never rendered under
the old id.

The directory is hostile content: symlinks are listed, never followed; more than
`MAX_FILES` files, or a `.git` entry (the store would not keep such a tree either), is refused
with `InputError`. It reads files only: it starts no process and writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from core.errors import InputError
from core.repo.artifacts import Artifacts
from core.repo.git import SYMLINK_MODE, Listing, Tree

__all__ = ["MAX_FILES", "unpacked_artifacts"]

MAX_FILES = 100_000
_EXECUTABLE = "100755"
_CHUNK = 1 << 20


def unpacked_artifacts(root: Path, revision: str, *, like: Artifacts | None = None) -> Artifacts:
    """The files of `revision`, read from its unpacked artifact `root`."""
    regular: dict[str, str] = {}
    """Listed path -> its file on disk."""
    links: dict[str, bytes] = {}
    modes: dict[str, str] = {}
    pending = [("", str(root))]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name == ".git":
                    raise InputError(f"the artifact of {revision} holds a .git entry")
                path = f"{prefix}{entry.name}"
                # The entry's type comes with the directory listing; only a regular file is
                # stat'ed, for its executable bit.
                if entry.is_symlink():
                    links[path] = os.fsencode(os.readlink(entry.path))
                    modes[path] = SYMLINK_MODE
                elif entry.is_dir(follow_symlinks=False):
                    pending.append((f"{path}/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    regular[path] = entry.path
                    if entry.stat(follow_symlinks=False).st_mode & stat.S_IXUSR:
                        modes[path] = _EXECUTABLE
                if len(regular) + len(links) > MAX_FILES:
                    raise InputError(
                        f"the artifact of {revision} holds more than {MAX_FILES} files"
                    )
    listing = _Unpacked(revision, regular, links)
    return Artifacts(Tree(revision, listing, modes=modes), listing.read_blob, like=like)


def _file_id(path: str) -> str:
    """The git blob id of a file, hashed as it is read in chunks (sizes are the attacker's)."""
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(b"blob %d\0" % size)
        read = 0
        while chunk := handle.read(_CHUNK):
            read += len(chunk)
            digest.update(chunk)
    if read != size:
        raise InputError(f"{os.path.basename(path)} changed while it was read")
    return digest.hexdigest()


class _Unpacked(Listing):
    """Path -> blob id of an unpacked artifact; a regular file is hashed when first asked for."""

    def __init__(self, revision: str, regular: dict[str, str], links: dict[str, bytes]) -> None:
        self._revision = revision
        self._regular = regular
        self._ids = {path: _blob_id(target) for path, target in links.items()}
        # Blob id -> how to read it: a symlink's target, or a file on disk.
        self._blobs: dict[str, bytes | str] = {self._ids[p]: t for p, t in links.items()}
        self._paths = [*regular, *links]
        self._lock = threading.Lock()

    def __getitem__(self, path: str) -> str:
        with self._lock:
            found = self._ids.get(path)
        if found is not None:
            return found
        on_disk = self._regular[path]  # KeyError: not a file of the artifact
        try:
            blob = _file_id(on_disk)
        except OSError as exc:
            raise InputError(f"the artifact of {self._revision} changed while it was read") from exc
        with self._lock:
            self._ids[path] = blob
            self._blobs.setdefault(blob, on_disk)
        return blob

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, path: object) -> bool:
        return path in self._regular or path in self._ids

    def read_blob(self, blob: str) -> bytes:
        """The content of a blob whose id was computed here, checked against that id."""
        with self._lock:
            source = self._blobs.get(blob)
        if isinstance(source, bytes):
            return source
        try:
            if source is None:
                raise KeyError(blob)
            with open(source, "rb") as handle:
                content = handle.read()
        except (KeyError, OSError) as exc:
            raise InputError(f"the artifact of {self._revision} changed while it was read") from exc
        if _blob_id(content) != blob:
            raise InputError(f"the artifact of {self._revision} changed while it was read")
        return content


def _blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()
