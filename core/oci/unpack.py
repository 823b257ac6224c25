"""Unpack a gzip-compressed tar layer into a directory, safely and within bounds.

As source-controller's untar does for OCI artifacts, symbolic and hard links are skipped (an
artifact never carries a link to a host file) and an entry whose name leaves the target directory
fails the whole archive. Devices and FIFOs are skipped too. The number of entries and the bytes
written are bounded, so a small compressed layer cannot fill the disk. Nothing is extracted
through `tarfile.extract`: every file is created by this module, below the target, with default
permissions.
"""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import TidegateError

__all__ = ["UnpackError", "UnpackLimits", "unpack"]

_CHUNK = 64 * 1024


class UnpackError(TidegateError):
    """A layer that is not a valid tarball, or breaks a bound."""


@dataclass(frozen=True)
class UnpackLimits:
    """Bounds on one unpacked layer."""

    files: int = 20_000
    bytes: int = 512 * 1024 * 1024


def unpack(archive: Path, target: Path, limits: UnpackLimits | None = None) -> None:
    """Unpack `archive` (tar, optionally gzip-compressed) into the existing directory `target`.

    Raises:
        UnpackError: the archive is invalid, names a path outside `target`, or is too large.
    """
    bounds = limits or UnpackLimits()
    written = 0
    count = 0
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                count += 1
                if count > bounds.files:
                    raise UnpackError(f"the layer has more than {bounds.files} entries")
                rel = _relative(member.name)
                if rel is None:
                    continue
                destination = target.joinpath(*rel.split("/"))
                if member.isdir():
                    _mkdir(target, destination)
                elif member.isfile():
                    written += member.size
                    if written > bounds.bytes:
                        raise UnpackError(f"the layer unpacks to more than {bounds.bytes} bytes")
                    _write(tar, member, target, destination)
                # Links, devices and FIFOs are skipped, as source-controller skips symlinks.
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnpackError(f"the layer is not a valid tar archive ({type(exc).__name__})") from None


def _relative(name: str) -> str | None:
    """Return the entry's path inside the target; None for the root; fail when it escapes."""
    cleaned = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    if ".." in name.replace("\\", "/").split("/"):
        raise UnpackError(f"the layer holds an entry outside its root: {name[:200]!r}")
    return cleaned or None


def _mkdir(root: Path, directory: Path) -> None:
    _check_inside(root, directory)
    directory.mkdir(parents=True, exist_ok=True)


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, destination: Path) -> None:
    _mkdir(root, destination.parent)
    if destination.is_symlink() or destination.is_dir():
        raise UnpackError(f"the layer holds {member.name[:200]!r} twice, as a file and a directory")
    source = tar.extractfile(member)
    if source is None:
        return
    with source, destination.open("wb") as out:
        left = member.size
        while left > 0:
            chunk = source.read(min(_CHUNK, left))
            if not chunk:
                raise UnpackError(f"the layer is truncated at {member.name[:200]!r}")
            out.write(chunk)
            left -= len(chunk)


def _check_inside(root: Path, path: Path) -> None:
    """Refuse a path that resolves outside the root (a directory replaced by a link)."""
    resolved = path.resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise UnpackError("the layer writes outside its root")
