"""Read a git repository at any revision without checking it out.

The preview engine renders a repository at two revisions and caches renders by content, so per
revision it needs the full file listing with blob ids (`Tree`, whose `digest` is the content
address of a set of input files) and cheap reads of single files (one long-lived
`git cat-file --batch` per `Repository`). `materialize` writes chosen files to a scratch directory
for tools that need a file system.

This module never changes a repository: no checkout, fetch, commit or ref update. Every git
process goes through `core.host.command`, and git sees only the repository's own config.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from abc import abstractmethod
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType, TracebackType

from core.errors import CommandError, GitError, InputError
from core.host.command import DEFAULT_LIMITS, Coprocess, Limits, run
from core.host.paths import normalize

__all__ = ["SYMLINK_MODE", "Listing", "Repository", "Tree"]

# A full object id: SHA-1 (40 hex) or SHA-256 (64 hex) repositories.
_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_SKIP_CHUNK = 1 << 20

# Git must not read the machine's or the user's config (helpers, URL rewrites, ...) nor ever
# wait for a password. Callers may override these through `Limits.env`.
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}

# Tree entry modes as git writes them.
_REGULAR = "100644"
SYMLINK_MODE = "120000"
"""git's mode of a symbolic link."""
_EXECUTABLE = "100755"
_SUBMODULE = "160000"
_ABSENT = "000000"
"""The mode `git diff-tree` gives the side of a change without the path."""
_NOT_FILES = (_SUBMODULE, _ABSENT)

# Listings of full commit ids are immutable, so a few are kept; base and head are the usual pair.
# They are kept per process, by repository: a long-lived preview process opens the repository
# afresh for every preview, and the base it lists is usually the one it listed last time.
_TREE_CACHE_SIZE = 8
_TREES: dict[tuple[str, str], Tree] = {}
_TREES_LOCK = threading.Lock()
# Git directories by what was opened (`_git_dir_of`), as few and for the same reason.
_GIT_DIRS: dict[tuple[object, ...], str] = {}
# Blob ids per request of `read_blobs`: about 10 KB, well under a pipe's buffer.
_BATCH = 256

# Paths are bytes in git; this decoding round-trips names that are not UTF-8.
_PATH_ENCODING = ("utf-8", "surrogateescape")


class Listing(Mapping[str, str]):
    """A path -> blob id listing whose ids may be computed only when asked for.

    A directory read in place (an unpacked artifact) lists its paths at once but hashes a file
    only when something needs its id, so a build that reads ten files of thousands costs ten
    hashes. `Tree` wraps a `Listing` without copying it (a copy would ask for every id), and
    `only` keeps that for a subset. Subclasses answer `in`, iteration and `len` from the paths
    alone, and give the same id for a path every time.
    """

    @abstractmethod
    def __contains__(self, path: object) -> bool:
        """Whether `path` is listed, answered without computing its id."""

    def only(self, paths: Iterable[str]) -> Listing:
        """The listing of `paths` (paths of this listing), still computing ids when asked."""
        return _Subset(self, tuple(paths))


class _Subset(Listing):
    def __init__(self, listing: Listing, paths: tuple[str, ...]) -> None:
        self._listing = listing
        self._paths = paths
        self._members = frozenset(paths)

    def __getitem__(self, path: str) -> str:
        if path not in self._members:
            raise KeyError(path)
        return self._listing[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, path: object) -> bool:
        return path in self._members


class Tree(Mapping[str, str]):
    """The files of one revision: repository-relative POSIX path -> blob id. Immutable.

    Regular and executable files are listed as they are. A symlink is listed as a file whose
    content is its target (that is what git stores), so reading it never follows it, inside the
    repository or out of it. Submodules are not files of this repository and Flux does not fetch
    them by default, so they are left out of the mapping and kept in `submodules` for reporting.

    Directory queries take paths such as `a/b`, `./a/b/` or `""` (the root); mapping lookups take
    the exact paths git lists.
    """

    def __init__(
        self,
        revision: str,
        files: Mapping[str, str],
        *,
        modes: Mapping[str, str] | None = None,
        submodules: Mapping[str, str] | None = None,
        diffed: tuple[str, frozenset[str]] | None = None,
    ) -> None:
        """Wrap a listing.

        Args:
            revision: The revision the listing was taken from.
            files: Path -> blob id.
            modes: Git modes of the files that are not plain `100644` files.
            submodules: Path -> commit id of submodules.
            diffed: A revision this listing was made from by git's diff, and the files that
                differ between the two (see `changes_against`).
        """
        self._revision = revision
        # A `Listing` computes ids when asked for: copying it would ask for all of them.
        self._files: Mapping[str, str] = files if isinstance(files, Listing) else dict(files)
        self._modes = dict(modes or {})
        self._submodules = MappingProxyType(dict(submodules or {}))
        self._diffed = diffed
        # Built on first use: many callers only look files up.
        self._sorted: list[str] | None = None
        self._children: dict[str, set[str]] | None = None

    @property
    def revision(self) -> str:
        """The revision this listing was taken from, as it was asked for."""
        return self._revision

    @property
    def submodules(self) -> Mapping[str, str]:
        """Submodule path -> commit id; their content is not part of this tree."""
        return self._submodules

    def __getitem__(self, path: str) -> str:
        return self._files[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        return path in self._files

    def __repr__(self) -> str:
        return f"Tree({self._revision!r}, {len(self._files)} files)"

    def changes_against(self, other: Tree) -> frozenset[str] | None:
        """The files that differ from `other`'s, when git said so; None when it is not known.

        Known when one listing was made from the other by `git diff-tree`: a file there or here
        only, or with another blob id or mode. Submodules are not files, so not among them.
        """
        for tree, against in ((self, other), (other, self)):
            if tree._diffed is not None and tree._diffed[0] == against.revision:
                return tree._diffed[1]
        return None

    def only(self, paths: Iterable[str]) -> Mapping[str, str]:
        """Path -> blob id for `paths` (files of this tree); ids not computed yet stay so."""
        if isinstance(self._files, Listing):
            return self._files.only(paths)
        return {path: self._files[path] for path in paths}

    def symlinks(self) -> frozenset[str]:
        """The files that are symbolic links (read from the few modes that are not `100644`)."""
        return frozenset(
            path
            for path, mode in self._modes.items()
            if mode == SYMLINK_MODE and path in self._files
        )

    def mode(self, path: str) -> str:
        """Return git's mode of a file: `100644`, `100755` (executable) or `120000` (symlink)."""
        if path not in self._files:
            raise KeyError(path)
        return self._modes.get(path, _REGULAR)

    def is_file(self, path: str) -> bool:
        """Whether `path` is a file (or a symlink, which reads as one)."""
        key = _normalize(path)
        return key is not None and key in self._files

    def is_dir(self, path: str) -> bool:
        """Whether `path` is a directory; the root always is."""
        key = _normalize(path)
        return key is not None and key in self._index()

    def listdir(self, path: str = "") -> list[str]:
        """Return the sorted names of the files and subdirectories directly in a directory.

        Raises:
            NotADirectoryError: `path` is not a directory of this tree.
        """
        key = _normalize(path)
        children = None if key is None else self._index().get(key)
        if children is None:
            raise NotADirectoryError(f"{path!r} is not a directory at revision {self._revision}")
        return sorted(children)

    def walk(self, path: str = "") -> list[str]:
        """Return the sorted paths of all files under a directory, at any depth.

        Raises:
            NotADirectoryError: `path` is not a directory of this tree.
        """
        directory = _normalize(path)
        if directory is None or directory not in self._index():
            raise NotADirectoryError(f"{path!r} is not a directory at revision {self._revision}")
        ordered = self._ordered()
        if not directory:
            return list(ordered)
        # Paths sharing a prefix are contiguous in sorted order, so a bisect finds them.
        prefix = directory + "/"
        found = []
        for index in range(bisect_left(ordered, prefix), len(ordered)):
            if not ordered[index].startswith(prefix):
                break
            found.append(ordered[index])
        return found

    def digest(self, paths: Iterable[str] | None = None) -> str:
        """Return the content address of a set of files: sha256 over sorted (path, blob id).

        It depends only on paths and contents, so the same files give the same digest at any
        revision. A path that does not exist counts as absent, which is itself an input (adding
        the file changes the digest).

        Args:
            paths: Exact paths as listed; all files of the tree if omitted.
        """
        chosen = self._ordered() if paths is None else sorted(set(paths))
        digest = hashlib.sha256()
        for path in chosen:
            blob = self._files.get(path, "-")
            digest.update(b"%s\0%s\n" % (path.encode(*_PATH_ENCODING), blob.encode()))
        return digest.hexdigest()

    def _ordered(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._files)
        return self._sorted

    def _index(self) -> dict[str, set[str]]:
        """Directory -> names directly in it; computing it twice from two threads is harmless."""
        if self._children is None:
            children: dict[str, set[str]] = {"": set()}
            for path in self._files:
                _enter(children, path)
            self._children = children
        return self._children


def _enter(children: dict[str, set[str]], path: str) -> None:
    """Add a file to a directory index, and the directories above it that are not there yet."""
    parent, _, name = path.rpartition("/")
    # Climb until a directory that is already known; each one is added once.
    while (entries := children.get(parent)) is None:
        children[parent] = {name}
        parent, _, name = parent.rpartition("/")
    entries.add(name)


def _leave(children: dict[str, set[str]], path: str) -> None:
    """Take a file out of a directory index, and the directories it leaves empty."""
    parent, _, name = path.rpartition("/")
    while True:
        entries = children[parent]
        entries.discard(name)
        if entries or not parent:
            return
        del children[parent]
        parent, _, name = parent.rpartition("/")


def _index_after(near: Tree, tree: Tree, changed: Iterable[str]) -> dict[str, set[str]] | None:
    """`tree`'s directory index made from `near`'s, when `near` has one; None otherwise.

    Removals go first: a path may turn from a file into a directory, or back.
    """
    if near._children is None:
        return None
    children = {directory: set(names) for directory, names in near._children.items()}
    changed = tuple(changed)
    for path in changed:
        if path in near and path not in tree:
            _leave(children, path)
    for path in changed:
        if path in tree and path not in near:
            _enter(children, path)
    return children


class Repository:
    """A git repository (a work tree or a bare repository), read at any revision.

    Safe to share between threads. Blob reads go through one long-lived `git cat-file --batch`
    process, started on first use and stopped by `close` (or at the end of a `with` block).
    """

    def __init__(self, path: Path | str, *, limits: Limits = DEFAULT_LIMITS) -> None:
        """Open the repository at `path` itself; parent directories are not searched.

        Raises:
            GitError: `path` is not a git repository.
        """
        root = Path(path).resolve()
        if not root.is_dir():
            raise GitError(f"{path} is not a git repository: there is no such directory")
        # The ceiling stops git from finding an enclosing repository when `path` is not one.
        env = {**_GIT_ENV, "GIT_CEILING_DIRECTORIES": str(root.parent), **limits.env}
        self._limits = replace(limits, env=env)
        self._path = root
        self._git_dir = _git_dir_of(root, self._limits, path)
        self._cat_file: Coprocess | None = None
        self._cat_file_lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The directory the repository was opened on."""
        return self._path

    def resolve(self, ref: str) -> str:
        """Return the full commit id a revision (branch, tag, id, `HEAD~1`, ...) names.

        Raises:
            GitError: The revision does not name a commit; the message names it.
        """
        _check_revision(ref)
        if _OBJECT_ID.fullmatch(ref):
            # A full id (what the pull-request app always sends) is peeled by the blob reader
            # already running, not by one more `git` process per revision.
            commit = self._peeled_commit(ref)
        else:
            out = self._git(
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{ref}^{{commit}}",
                ok=(0, 1),
            )
            commit = out.decode().strip()
        if not commit:
            raise GitError(f"unknown revision {ref!r}: it names no commit in {self._path.name}")
        return commit

    def merge_base(self, a: str, b: str) -> str:
        """Return the best common ancestor of two revisions.

        Raises:
            GitError: A revision is unknown, or the two have no common ancestor.
        """
        first, second = self.resolve(a), self.resolve(b)
        out = self._git("merge-base", "--end-of-options", first, second, ok=(0, 1))
        base = out.decode().strip()
        if not base:
            raise GitError(f"revisions {a!r} and {b!r} have no common ancestor")
        return base

    def default_branch(self) -> str:
        """Return the default branch: what `origin/HEAD` points to, else `main`, else `master`.

        Raises:
            GitError: None of them exists.
        """
        head = self._git("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", ok=(0, 1))
        if head.strip():
            return head.decode().strip().removeprefix("refs/remotes/origin/")
        candidates = ("main", "master")
        patterns = [
            f"{ns}{name}" for name in candidates for ns in ("refs/heads/", "refs/remotes/origin/")
        ]
        refs = set(self._git("for-each-ref", "--format=%(refname)", *patterns).decode().split())
        for name in candidates:
            if f"refs/heads/{name}" in refs or f"refs/remotes/origin/{name}" in refs:
                return name
        raise GitError(
            f"{self._path.name} has no default branch: no origin/HEAD, and no main or master branch"
        )

    def tree(self, revision: str) -> Tree:
        """Return every file of a revision (a commit, tag or tree) with its blob id.

        Listings of full object ids are cached, since what they name never changes.

        Raises:
            GitError: The revision is unknown or cannot be listed; the message names it.
        """
        key = (self._git_dir, revision)
        full_id = _OBJECT_ID.fullmatch(revision) is not None
        with _TREES_LOCK:
            cached = _TREES.get(key)
            # The listing this repository's last one differs from least, as a rule: a head
            # listed after its base, a new base after the old.
            near = _last_listed(self._git_dir) if cached is None and full_id else None
        if cached is not None:
            return cached
        _check_revision(revision)
        tree = self._changed_from(near, revision) if near is not None else None
        if tree is None:
            try:
                out = self._git("ls-tree", "-r", "-z", "--full-tree", "--end-of-options", revision)
            except GitError as exc:
                raise GitError(f"cannot list revision {revision!r}: {exc}") from exc
            tree = _parse_tree(revision, out)
        if full_id:
            with _TREES_LOCK:
                if len(_TREES) >= _TREE_CACHE_SIZE:
                    del _TREES[next(iter(_TREES))]  # the oldest
                _TREES[key] = tree
        return tree

    def _changed_from(self, near: Tree, revision: str) -> Tree | None:
        """The listing of `revision` as `near`'s with their differences applied, or None.

        `git diff-tree` compares the two trees object by object and skips every subtree they
        share, so this costs what the change costs, where `ls-tree` costs what the repository
        holds. None when git cannot compare them: the listing then says why.
        """
        try:
            out = self._git(
                "diff-tree", "-r", "-z", "--no-renames", "--no-abbrev",
                "--end-of-options", near.revision, revision,
            )  # fmt: skip
        except GitError:
            return None
        try:
            return _apply_diff(near, revision, out)
        except (KeyError, ValueError):
            return None  # an answer this parser does not know: list the revision instead

    def read_blob(self, blob_id: str) -> bytes:
        """Return the exact content of a blob.

        Raises:
            GitError: The id is malformed, unknown, or names something other than a blob.
        """
        if not _OBJECT_ID.fullmatch(blob_id):
            raise GitError(f"{blob_id!r} is not a full object id")
        with self._cat_file_lock:
            cat_file = self._running_cat_file()
            try:
                return _cat_blob(cat_file, blob_id)
            except CommandError as exc:
                # Start afresh on the next read rather than talk to a broken process.
                cat_file.close()
                self._cat_file = None
                raise GitError(f"could not read blob {blob_id}: {exc}") from exc

    def _peeled_commit(self, object_id: str) -> str:
        """The commit a full object id names (itself, or what a tag points to); "" if none."""
        with self._cat_file_lock:
            cat_file = self._running_cat_file()
            try:
                cat_file.send(f"{object_id}^{{commit}}\n".encode())
                header = cat_file.read_line().decode().split(" ")
                if len(header) != 3:
                    return ""  # `<name> missing`: unknown, or nothing that peels to a commit
                found, kind, size = header
                # The commit object and its newline, skipped a chunk at a time: a hostile
                # commit's message may be of any size, and only its id is wanted.
                left = int(size) + 1
                while left:
                    left -= len(cat_file.read_exact(min(left, _SKIP_CHUNK)))
            except CommandError as exc:
                cat_file.close()
                self._cat_file = None
                raise GitError(f"could not read {object_id}: {exc}") from exc
        return found if kind == "commit" and _OBJECT_ID.fullmatch(found) else ""

    def read_blobs(self, blob_ids: Iterable[str], *, max_bytes: int) -> dict[str, bytes]:
        """Return the content of many blobs, read with few round trips to the blob reader.

        Requests go out in chunks small enough that neither pipe can fill while the other waits.
        Reading stops after the chunk that passes `max_bytes` in all, so the answer may hold
        only some of the blobs; the caller reads the others one by one.

        Raises:
            GitError: An id is malformed, unknown, or names something other than a blob.
        """
        wanted = list(dict.fromkeys(blob_ids))
        for blob_id in wanted:
            if not _OBJECT_ID.fullmatch(blob_id):
                raise GitError(f"{blob_id!r} is not a full object id")
        found: dict[str, bytes] = {}
        total = 0
        with self._cat_file_lock:
            cat_file = self._running_cat_file()
            try:
                for start in range(0, len(wanted), _BATCH):
                    chunk = wanted[start : start + _BATCH]
                    cat_file.send(b"".join(blob_id.encode() + b"\n" for blob_id in chunk))
                    for blob_id in chunk:
                        found[blob_id] = _read_answer(cat_file, blob_id)
                        total += len(found[blob_id])
                    if total > max_bytes:
                        break
            except (CommandError, GitError) as exc:
                # Answers may still be in the pipe: start afresh on the next read.
                cat_file.close()
                self._cat_file = None
                if isinstance(exc, GitError):
                    raise
                raise GitError(f"could not read blobs: {exc}") from exc
        return found

    def read_file(self, tree: Tree, path: str) -> bytes:
        """Return the content of the file at `path` in `tree`.

        Raises:
            GitError: There is no such file in the tree.
        """
        blob = tree.get(path)
        if blob is None:
            raise GitError(f"{path!r} does not exist at revision {tree.revision}")
        return self.read_blob(blob)

    def materialize(self, tree: Tree, paths: Iterable[str], dest: Path) -> None:
        """Write files of `tree` under `dest` byte for byte, creating parent directories.

        Files get mode 0755 if git marks them executable and 0644 otherwise; symlinks are
        written as regular files holding their target. Existing files are overwritten.

        Raises:
            GitError: A path is not a file of the tree, or would land outside `dest`.
            OSError: The file system refused a write.
        """
        root = dest.resolve()
        root.mkdir(parents=True, exist_ok=True)
        checked: set[Path] = {root}
        for path in paths:
            blob = tree.get(path)
            if blob is None:
                raise GitError(f"{path!r} does not exist at revision {tree.revision}")
            target = _target(root, path, checked)
            mode = 0o755 if tree.mode(path) == _EXECUTABLE else 0o644
            _write_file(target, self.read_blob(blob), mode)

    def close(self) -> None:
        """Stop the blob reader; the repository may still be used and restarts it if needed."""
        with self._cat_file_lock:
            if self._cat_file is not None:
                self._cat_file.close()
                self._cat_file = None

    def __enter__(self) -> Repository:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Repository({str(self._path)!r})"

    def _git(self, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        argv = ["git", f"--git-dir={self._git_dir}", *args]
        try:
            return run(argv, cwd=self._path, limits=self._limits, ok_codes=ok)
        except CommandError as exc:
            raise GitError(str(exc)) from exc

    def _running_cat_file(self) -> Coprocess:
        if self._cat_file is None or not self._cat_file.alive:
            argv = ["git", f"--git-dir={self._git_dir}", "cat-file", "--batch"]
            try:
                self._cat_file = Coprocess(argv, cwd=self._path, limits=self._limits)
            except CommandError as exc:
                raise GitError(str(exc)) from exc
        return self._cat_file


def _check_revision(revision: str) -> None:
    """Refuse what git would read as an option or what would break the batch protocol."""
    if not revision or revision.startswith("-") or any(c in revision for c in "\0\n\r"):
        raise GitError(f"invalid revision {revision!r}")


def _normalize(path: str) -> str | None:
    """Return the tree key of a query (`./a//b/` -> `a/b`), or None when no tree can hold it."""
    try:
        return normalize(path)
    except InputError:
        return None


def _parse_tree(revision: str, listing: bytes) -> Tree:
    """Parse `git ls-tree -r -z`: records `<mode> <type> <id>TAB<path>`, each ending in NUL."""
    files: dict[str, str] = {}
    modes: dict[str, str] = {}
    submodules: dict[str, str] = {}
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _, object_id = meta.decode("ascii").split(" ")
        path = raw_path.decode(*_PATH_ENCODING)
        if mode == _SUBMODULE:
            submodules[path] = object_id
            continue
        files[path] = object_id
        if mode != _REGULAR:
            modes[path] = mode
    return Tree(revision, files, modes=modes, submodules=submodules)


def _git_dir_of(root: Path, limits: Limits, given: Path | str) -> str:
    """The repository's git directory, asked of git once per process while `root` stays put.

    A long-lived preview process opens the same repository for every preview. What git answers
    depends on `root` and on what `.git` is there (a directory, or a file naming one), so the
    answer is kept under their identity (device, inode, modification time): a repository
    cloned again, moved or turned into a worktree in place is asked again.
    """
    try:
        probe = os.lstat(root / ".git")
        where = ".git"
    except OSError:
        probe = os.lstat(root)  # a bare repository, or not a repository at all
        where = "."
    # The environment too: a caller's limits may name git's own variables.
    key = (
        str(root),
        where,
        probe.st_dev,
        probe.st_ino,
        probe.st_mtime_ns,
        *sorted(limits.env.items()),
    )
    with _TREES_LOCK:
        found = _GIT_DIRS.get(key)
    if found is not None:
        return found
    try:
        out = run(["git", "rev-parse", "--absolute-git-dir"], cwd=root, limits=limits)
    except CommandError as exc:
        raise GitError(f"{given} is not a git repository: {exc.stderr or exc}") from exc
    found = out.decode(*_PATH_ENCODING).strip()
    with _TREES_LOCK:
        if len(_GIT_DIRS) >= _TREE_CACHE_SIZE:
            del _GIT_DIRS[next(iter(_GIT_DIRS))]  # the oldest
        _GIT_DIRS[key] = found
    return found


def _last_listed(git_dir: str) -> Tree | None:
    """The listing of this repository kept last (call with `_TREES_LOCK` held)."""
    for (directory, _revision), tree in reversed(_TREES.items()):
        if directory == git_dir:
            return tree
    return None


def _apply_diff(near: Tree, revision: str, diff: bytes) -> Tree:
    """Parse `git diff-tree -r -z --no-renames` from `near` and apply it to `near`'s listing.

    Records are `:<old mode> <new mode> <old id> <new id> <status>`, NUL, the path, NUL; a mode
    of `000000` is a side without the path. A change of type (a file becoming a symlink or a
    submodule) is one record with both modes.
    """
    files = dict(near._files)
    modes = dict(near._modes)
    submodules = dict(near.submodules)
    changed = set()
    fields = diff.split(b"\0")
    for index in range(0, len(fields) - 1, 2):
        meta, raw_path = fields[index], fields[index + 1]
        old_mode, new_mode, _old_id, new_id, _status = meta[1:].decode("ascii").split(" ")
        path = raw_path.decode(*_PATH_ENCODING)
        if old_mode not in _NOT_FILES or new_mode not in _NOT_FILES:
            changed.add(path)
        if old_mode == _SUBMODULE:
            del submodules[path]
        elif old_mode != _ABSENT:
            del files[path]
            modes.pop(path, None)
        if new_mode == _SUBMODULE:
            submodules[path] = new_id
        elif new_mode != _ABSENT:
            files[path] = new_id
            if new_mode != _REGULAR:
                modes[path] = new_mode
    diffed = (near.revision, frozenset(changed))
    tree = Tree(revision, files, modes=modes, submodules=submodules, diffed=diffed)
    # The directory index follows the diff too, when `near`'s was built (it costs what the
    # repository holds to build).
    tree._children = _index_after(near, tree, changed)
    return tree


def _cat_blob(cat_file: Coprocess, blob_id: str) -> bytes:
    """Ask `git cat-file --batch` for one object.

    The answer is a line `<id> <type> <size>`, the content and a newline, or `<id> missing`.
    """
    cat_file.send(blob_id.encode() + b"\n")
    return _read_answer(cat_file, blob_id)


def _read_answer(cat_file: Coprocess, blob_id: str) -> bytes:
    """Read the answer to one request of `git cat-file --batch`."""
    header = cat_file.read_line().decode().split(" ")
    if len(header) != 3:
        raise GitError(f"blob {blob_id} does not exist in this repository")
    _, kind, size = header
    content = cat_file.read_exact(int(size))
    cat_file.read_exact(1)  # the newline after the content
    if kind != "blob":
        raise GitError(f"{blob_id} is a {kind}, not a blob")
    return content


def _target(root: Path, path: str, checked: set[Path]) -> Path:
    """Return where `path` goes under `root`, creating its directories; refuse to leave `root`.

    Git refuses to check out such paths, but a crafted tree object can still hold them.
    """
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise GitError(f"refusing to write {path!r}: it is not a plain relative path")
    directory = root
    for part in parts[:-1]:
        directory = directory / part
        if directory in checked:
            continue
        # A symlink already in `dest` could redirect the write; only real directories are used.
        if directory.is_symlink():
            raise GitError(f"refusing to write {path!r}: it would land outside the destination")
        directory.mkdir(exist_ok=True)
        checked.add(directory)
    return directory / parts[-1]


def _write_file(target: Path, content: bytes, mode: int) -> None:
    # O_NOFOLLOW: never write through a symlink that is already there.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(target, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not change what git says
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
