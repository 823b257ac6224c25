"""A source artifact as a view over repository files: what Flux would unpack, without copying.

Flux does not hand a Kustomization the repository: it hands it an artifact. A GitRepository's
artifact is the revision minus its ignored files; an ExternalArtifact is what an ArtifactGenerator
copied out of other artifacts, under other paths. Both are mappings from artifact path to content,
so a `FileView` holds exactly that: artifact path -> content id, where the id is a git blob id
(content read from the repository on demand) or the digest of content made here (a YAML merge).

A view is a `FileSource` for the renderers and a `TreeView` for the render cache, whose digests
hash (artifact path, content id): a render is keyed on what the artifact holds, not on where in
the repository it came from. `origin` maps an artifact path back to the repository file it was
copied from, for the ownership index. This module holds and reads data only: it never writes and
never starts a process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

from core.host.paths import normalize
from core.repo.git import Tree

__all__ = ["FileView", "made_id"]

_MADE_PREFIX = "made:"


def made_id(content: bytes) -> str:
    """Return the content id of bytes made here (not a repository blob)."""
    return _MADE_PREFIX + hashlib.sha256(content).hexdigest()


class FileView:
    """Artifact path -> content id, with the repository files each path came from."""

    def __init__(
        self,
        label: str,
        files: Mapping[str, str],
        read_blob: Callable[[str], bytes],
        *,
        origins: Mapping[str, str] | None = None,
        made: Mapping[str, bytes] | None = None,
        symlinks: Iterable[str] = (),
        identity: str | None = None,
    ) -> None:
        """Wrap a listing.

        Args:
            label: What the view is, for messages (`ExternalArtifact/flux-system/apps`).
            files: Artifact path -> content id (git blob id, or `made_id` of made content).
            read_blob: Reads a repository blob by id.
            origins: Artifact path -> repository path it was copied from (default: the same).
            made: Content id -> bytes, for content made here.
            symlinks: Paths that are symbolic links in the repository; the artifact leaves
                them out (as Flux's archive does), `is_symlink` still names them.
            identity: A name for the whole content (same identity, same files and bytes), for
                the render cache's revision memo; None when the content has no such name.
        """
        self.identity = identity
        self.label = label
        # A revision's own listing is shared as it is, with its directory index.
        self._tree = files if isinstance(files, Tree) else Tree(label, files)
        self._read_blob = read_blob
        self._origins = dict(origins or {})
        self._made = dict(made or {})
        self._symlinks = frozenset(symlinks)

    @property
    def files(self) -> Mapping[str, str]:
        """Artifact path -> content id."""
        return self._tree

    def origin(self, path: str) -> str:
        """Return the repository file an artifact path was copied from ("" if none)."""
        return self._origins.get(path, path)

    def origins(self, paths: Iterable[str]) -> frozenset[str]:
        """Return the repository files behind artifact paths (those that exist and have one)."""
        return frozenset(o for p in paths if p in self._tree and (o := self.origin(p)))

    # FileSource

    def is_file(self, path: str) -> bool:
        """Tell whether `path` is a file of the artifact."""
        return self._tree.is_file(normalize(path))

    def is_dir(self, path: str) -> bool:
        """Tell whether `path` is a directory of the artifact (`""` is the root)."""
        return self._tree.is_dir(normalize(path))

    def listdir(self, path: str = "") -> list[str]:
        """Return the sorted names directly in a directory.

        Raises:
            NotADirectoryError: `path` is not a directory of the artifact.
        """
        return self._tree.listdir(normalize(path))

    def is_symlink(self, path: str) -> bool:
        """Tell whether `path` is a symbolic link in the repository."""
        return normalize(path) in self._symlinks

    def read(self, path: str) -> bytes:
        """Return the content of a file of the artifact."""
        content_id = self._tree[normalize(path)]
        if content_id.startswith(_MADE_PREFIX):
            return self._made[content_id]
        return self._read_blob(content_id)

    def walk(self, path: str = "") -> list[str]:
        """Return every file path under a directory, sorted."""
        return self._tree.walk(normalize(path))

    # TreeView

    def digest(self, paths: Iterable[str] | None = None) -> str:
        """Content address of a set of artifact paths (absent paths count as absent)."""
        return self._tree.digest(paths)
