"""Name a tool binary by its content, so no cache reuses output made by another build of it.

A render depends on the kustomize and helm that made it. Naming them by path is not enough: an
upgrade installed at the same path (`/usr/local/bin/kustomize`) would keep serving renders of the
old version. Naming them by size and modification time is not enough either (`cp -p`, or a build
that sets a fixed time). So a tool is named by the SHA-256 of its bytes.

Hashing a 60 MiB helm costs tens of milliseconds, too much for every command-line preview. The
digest is remembered per *fingerprint* of the file: real path, device, inode, size, modification
and change time. The change time cannot be set from user space, so a replaced or rewritten binary
always gets a new fingerprint and is hashed again; a CI job that reinstalls the same release
hashes it once and then finds its old renders. Fingerprints are remembered in this process and,
when given a directory, on disk (one small file each, written atomically).

This module must not run the tool (a version string is what the tool says of itself; the bytes
are what it is) and must not raise for a missing binary: the caller's run reports that clearly.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path

__all__ = ["identify"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_known: dict[str, str] = {}
_lock = threading.Lock()


def identify(binary: Path, memo_dir: Path | None = None) -> str:
    """Return `sha256:<hex>` of the binary's content, or `missing:<path>` if it cannot be read.

    `memo_dir`, if given, keeps the digest per fingerprint across processes.
    """
    try:
        fingerprint = _fingerprint(binary)
    except OSError:
        return f"missing:{binary}"
    with _lock:
        known = _known.get(fingerprint)
    if known is None:
        known = _remembered(memo_dir, fingerprint) or _hash(binary, memo_dir, fingerprint)
        with _lock:
            _known[fingerprint] = known
    return known


def _fingerprint(binary: Path) -> str:
    stat = os.stat(binary)
    parts = (os.path.realpath(binary), stat.st_dev, stat.st_ino, stat.st_size)
    times = (stat.st_mtime_ns, stat.st_ctime_ns)
    return hashlib.sha256(repr((*parts, *times)).encode()).hexdigest()


def _remembered(memo_dir: Path | None, fingerprint: str) -> str | None:
    if memo_dir is None:
        return None
    try:
        text = (memo_dir / fingerprint).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    # A damaged or foreign file is ignored (hashed again), never trusted.
    return f"sha256:{text}" if _DIGEST.fullmatch(text) else None


def _hash(binary: Path, memo_dir: Path | None, fingerprint: str) -> str:
    try:
        with open(binary, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return f"missing:{binary}"
    if memo_dir is not None:
        _remember(memo_dir, fingerprint, digest)
    return f"sha256:{digest}"


def _remember(memo_dir: Path, fingerprint: str, digest: str) -> None:
    # Best effort: an unwritable cache costs a hash next time, never a failed preview.
    with contextlib.suppress(OSError):
        memo_dir.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=memo_dir, prefix=".tool-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(digest)
            os.replace(scratch, memo_dir / fingerprint)
        except OSError:
            os.unlink(scratch)
