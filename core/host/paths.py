"""The one normaliser of repository-relative paths.

Every path a repository names (a Flux `spec.path`, a kustomization entry, a chart dependency, a
file asked of a git tree or a directory) is untrusted. This module turns such a path into its
canonical repository-relative POSIX form (`""` is the root, no `./`, no trailing `/`, no `..`) or
refuses it with an `InputError`, so that there is one definition of "inside the repository".
It is pure string work: it never touches the disk, so symlinks are the file sources' business.
"""

from __future__ import annotations

import functools
import posixpath

from core.errors import InputError

__all__ = ["flux_path", "join", "normalize"]


def normalize(path: str, *, file: str | None = None, field: str | None = None) -> str:
    """Return the canonical repository-relative form of `path` (`""` is the root).

    Args:
        path: A repository-relative POSIX path.
        file: The file that named the path, for the error message.
        field: The field that named the path, for the error message.

    Raises:
        InputError: the path is absolute, not POSIX, or climbs above the repository root.
    """
    if file is None and field is None:
        return _normalized(path)
    return _checked(path, file, field)


@functools.lru_cache(maxsize=1 << 16)
def _normalized(path: str) -> str:
    # Input walks and tree lookups ask about the same paths tens of thousands of times per
    # preview. Bounded, since the paths come from the repository; a refused path is not kept.
    return _checked(path, None, None)


def _checked(path: str, file: str | None, field: str | None) -> str:
    if path.startswith("/") or "\\" in path or "\0" in path:
        raise InputError(
            f"path {path!r} is not a repository-relative POSIX path", file=file, field=field
        )
    return _inside(path, path, file, field)


def join(base: str, entry: str, *, file: str | None = None, field: str | None = None) -> str:
    """Return the repository path that `entry`, relative to directory `base`, names.

    Args:
        base: A normalised repository directory (`""` is the root).
        entry: The relative path as written in the repository, e.g. in a kustomization file.
        file: The file that holds `entry`, for the error message.
        field: The field that holds `entry`, for the error message.

    Raises:
        InputError: `entry` is absolute, not POSIX, or the result leaves the repository.
    """
    if entry.startswith("/"):
        raise InputError(f"absolute path {entry!r} is not allowed", file=file, field=field)
    if "\\" in entry or "\0" in entry:
        raise InputError(f"path {entry!r} is not a POSIX path", file=file, field=field)
    return _inside(posixpath.join(base, entry) if base else entry, entry, file, field)


def flux_path(path: str) -> str:
    """Return the repository path of a Flux `spec.path` or a cluster entry point.

    kustomize-controller joins `spec.path` onto the artifact root with `securejoin.SecureJoin`:
    `./apps`, `/apps` and `apps/` all name `apps`, and `..` stops at the root instead of leaving
    it (`../../apps` is `apps`). Surrounding blanks are ignored.

    Raises:
        InputError: the path is not POSIX (a backslash or NUL).
    """
    return normalize(posixpath.normpath("/" + path.strip()).lstrip("/"))


def _inside(path: str, shown: str, file: str | None, field: str | None) -> str:
    """Collapse `path`; refuse it when it climbs out, naming it as written (`shown`)."""
    clean = posixpath.normpath(path) if path else "."
    if clean == ".." or clean.startswith("../"):
        raise InputError(f"path {shown!r} leaves the repository", file=file, field=field)
    return "" if clean == "." else clean
