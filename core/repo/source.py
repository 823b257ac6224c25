"""A git revision seen as a `FileSource`, so renderers read git objects without a checkout."""

from __future__ import annotations

from core.host.paths import normalize
from core.repo.git import SYMLINK_MODE, Repository, Tree

__all__ = ["GitSource"]


class GitSource:
    """The files of one revision of a repository, read through `git cat-file`."""

    def __init__(self, repo: Repository, tree: Tree) -> None:
        self.repo = repo
        self.tree = tree

    def is_file(self, path: str) -> bool:
        """Tell whether `path` is a file at this revision."""
        return self.tree.is_file(normalize(path))

    def is_dir(self, path: str) -> bool:
        """Tell whether `path` is a directory at this revision."""
        return self.tree.is_dir(normalize(path))

    def listdir(self, path: str) -> list[str]:
        """Return the names directly in a directory (none when it does not exist)."""
        try:
            return self.tree.listdir(normalize(path))
        except NotADirectoryError:
            return []

    def is_symlink(self, path: str) -> bool:
        """Tell whether `path` is a symbolic link at this revision (git has no linked dirs)."""
        key = normalize(path)
        return key in self.tree and self.tree.mode(key) == SYMLINK_MODE

    def read(self, path: str) -> bytes:
        """Return a file's bytes."""
        return self.repo.read_file(self.tree, normalize(path))
