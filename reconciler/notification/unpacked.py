"""An unpacked source artifact read in place, as the files of a revision (`core.repo.artifacts`).

The controller predicts a newly pushed revision before it is kept in the revision store
(`revisions.RevisionStore`), so the head of that prediction is the artifact directory itself:
`unpacked_artifacts` lists it as a `Tree` whose ids are the git blob ids the store would give
the same files (regular `100644`, executable `100755`, symlink `120000` holding its target), so
the render cache, the ignore verdicts shared with the base and the plan are exactly those of the
stored revision. A file's content is read when a build reads it (`read_blob`), not before; its id
is computed as it is listed.

The directory is hostile content: symlinks are listed, never followed; more than
`MAX_FILES` files, or a `.git` entry (the store would not keep such a tree either), is refused
with `InputError`. It reads files only: it starts no process and writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from core.errors import InputError
from core.repo.artifacts import Artifacts
from core.repo.git import SYMLINK_MODE, Tree

__all__ = ["MAX_FILES", "unpacked_artifacts"]

MAX_FILES = 100_000
_EXECUTABLE = "100755"
_CHUNK = 1 << 20


def unpacked_artifacts(root: Path, revision: str, *, like: Artifacts | None = None) -> Artifacts:
    """The files of `revision`, read from its unpacked artifact `root`."""
    files: dict[str, str] = {}
    modes: dict[str, str] = {}
    paths: dict[str, str] = {}
    links: dict[str, bytes] = {}
    pending = [("", str(root))]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name == ".git":
                    raise InputError(f"the artifact of {revision} holds a .git entry")
                path = f"{prefix}{entry.name}"
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISLNK(mode):
                    target = os.fsencode(os.readlink(entry.path))
                    files[path] = _blob_id(target)
                    modes[path] = SYMLINK_MODE
                    links[files[path]] = target
                elif stat.S_ISDIR(mode):
                    pending.append((f"{path}/", entry.path))
                elif stat.S_ISREG(mode):
                    files[path] = _file_id(entry.path)
                    paths.setdefault(files[path], entry.path)
                    if mode & stat.S_IXUSR:
                        modes[path] = _EXECUTABLE
                if len(files) > MAX_FILES:
                    raise InputError(
                        f"the artifact of {revision} holds more than {MAX_FILES} files"
                    )

    def read_blob(blob: str) -> bytes:
        if blob in links:
            return links[blob]
        try:
            with open(paths[blob], "rb") as handle:
                return handle.read()
        except (KeyError, OSError) as exc:
            raise InputError(f"the artifact of {revision} changed while it was read") from exc

    return Artifacts(Tree(revision, files, modes=modes), read_blob, like=like)


def _blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


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
