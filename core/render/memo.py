"""A bounded in-memory memo of `kustomize build` output, for a process that builds repeatedly.

kustomize with no plugins, exec, helm or remote bases (the renderer refuses them) is a pure
function of the files it reads and of the binary: the same bytes in give the same bytes out. The
reconciler rebuilds every Kustomization at each interval, usually from an unchanged artifact, and
for a large one kustomize's own run is most of a no-op reconcile's CPU. The renderer keys each
build by a digest of everything it hands kustomize; on a hit it skips the process, and
everything after it (parsing, checks, substitution, labels) runs as always. The digest comes
either from the copied files themselves (`key`), or, for an artifact whose files are named by its
verified digest and never change under it, from that digest, the paths copied and the one file
the renderer writes (`artifact_key`): the artifact is then hashed once, when it is downloaded,
not at every build.

What is kept is kustomize's raw output, in this process's memory only: never on disk, never
logged. Output that may hold a Secret is never kept (any mention of `Secret`, which covers every
Secret object and every generator), so the memo holds no Secret value; nor is output larger
than a quarter of the budget. The least recently used entries go first when the budget is full.
This module runs nothing and reads no file it is not handed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.render import tool_identity

__all__ = ["BuildMemo", "artifact_key", "key"]

_DEFAULT_BUDGET = 32 << 20
"""Bytes of output kept at most (a 1,000-object Kustomization's output is about 0.3 MiB)."""


def key(binary: Path, argv: Iterable[str], tree: Path) -> str:
    """A digest of the binary, the arguments and every file under `tree` (path and content).

    The binary is named by its content (`tool_identity`), so a replaced binary misses.
    """
    hasher = hashlib.sha256(_command(binary, argv) + b"tree\0")
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        content = path.read_bytes()
        hasher.update(_file_header(path.relative_to(tree).as_posix(), content))
        hasher.update(content)
    return hasher.hexdigest()


def artifact_key(
    binary: Path,
    argv: Iterable[str],
    artifact: str,
    inputs: Iterable[str],
    written: Mapping[str, bytes],
) -> str:
    """A digest of the binary, the arguments and a tree copied from an artifact.

    The tree holds the files at `inputs` (repository paths) as the artifact has them, then the
    files in `written` (repository path -> content) over them. `artifact` must name every byte
    of the artifact's files (its verified digest): any other file kustomize may read changes the
    input paths or `written`, which are hashed here whole.
    """
    hasher = hashlib.sha256(_command(binary, argv) + b"artifact\0")
    hasher.update(_field(artifact))
    for path in sorted(inputs):
        hasher.update(_field(path))
    hasher.update(b"written\0")
    for path, content in sorted(written.items()):
        hasher.update(_file_header(path, content))
        hasher.update(content)
    return hasher.hexdigest()


def _command(binary: Path, argv: Iterable[str]) -> bytes:
    """The binary (by content, see `tool_identity`) and the arguments, as bytes to hash."""
    named = f"{tool_identity.identify(binary)}\0".encode()
    return named + b"".join(arg.encode() + b"\0" for arg in argv)


def _field(text: str) -> bytes:
    # Length first, so that no two different sequences of fields hash the same bytes.
    data = text.encode()
    return b"%d\0%s\0" % (len(data), data)


def _file_header(path: str, content: bytes) -> bytes:
    return _field(path) + b"%d\0" % len(content)


class BuildMemo:
    """Output by key, least recently used first out, within a byte budget; thread-safe."""

    def __init__(self, budget: int = _DEFAULT_BUDGET) -> None:
        self._budget = budget
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        """Lookups answered from the memo (for tests and the benchmark)."""

    def get(self, digest: str) -> bytes | None:
        """The output kept under `digest`, or None."""
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                self._entries.move_to_end(digest)
                self.hits += 1
            return found

    def put(self, digest: str, output: bytes) -> bool:
        """Keep `output` unless it may hold a Secret or is too large; tell whether it was kept."""
        if b"Secret" in output or len(output) > self._budget // 4:
            return False
        with self._lock:
            if digest in self._entries:
                return True
            self._entries[digest] = output
            self._size += len(output)
            while self._size > self._budget:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped)
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
