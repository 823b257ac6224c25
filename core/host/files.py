"""Read-only access to the files of one repository revision, by repository-relative POSIX path.

Renderers read repository content only through a `FileSource`, so the same code renders a plain
directory (tests, local previews) and a git tree (the engine adapts one to this Protocol). Paths are
always relative to the repository root, use `/`, and may never leave the root: a path that would is
refused with `InputError` by `core.host.paths`, the one normaliser. This module never writes,
never follows a symlink out of the root and never starts a process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from core.errors import InputError
from core.host.paths import normalize

__all__ = ["DirectorySource", "FileSource"]


@runtime_checkable
class FileSource(Protocol):
    """The files of one repository revision, addressed by repository-relative POSIX paths."""

    def is_file(self, path: str) -> bool:
        """Tell whether `path` is a regular file."""
        ...

    def is_dir(self, path: str) -> bool:
        """Tell whether `path` is a directory (`""` is the root)."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Return the sorted names of the entries of directory `path`."""
        ...

    def read(self, path: str) -> bytes:
        """Return the content of file `path`."""
        ...

    def is_symlink(self, path: str) -> bool:
        """Tell whether `path`, or a directory on the way to it, is a symbolic link."""
        ...


class DirectorySource:
    """A `FileSource` over a plain directory on disk.

    Symlinks are treated as absent: a repository symlink could point anywhere on the host, and
    Flux's artifacts are plain tarballs where such links do not resolve to host files either.
    """

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def _path(self, path: str) -> Path | None:
        """Return the on-disk path, or None when any component is a symlink."""
        rel = normalize(path)
        current = self._root
        for part in rel.split("/") if rel else ():
            current = current / part
            if current.is_symlink():
                return None
        return current

    def is_file(self, path: str) -> bool:
        """Tell whether `path` is a regular file."""
        target = self._path(path)
        return target is not None and target.is_file()

    def is_symlink(self, path: str) -> bool:
        """Tell whether `path`, or a directory on the way to it, is a symbolic link."""
        return self._path(path) is None

    def is_dir(self, path: str) -> bool:
        """Tell whether `path` is a directory (`""` is the root)."""
        target = self._path(path)
        return target is not None and target.is_dir()

    def listdir(self, path: str) -> list[str]:
        """Return the sorted names of the entries of directory `path` (symlinks left out)."""
        target = self._path(path)
        if target is None or not target.is_dir():
            raise InputError(f"not a directory: {normalize(path) or '.'}")
        return sorted(entry.name for entry in target.iterdir() if not entry.is_symlink())

    def read(self, path: str) -> bytes:
        """Return the content of file `path`."""
        target = self._path(path)
        if target is None or not target.is_file():
            raise InputError(f"not a file: {normalize(path)}")
        return target.read_bytes()
