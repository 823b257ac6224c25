"""The source artifacts of one revision, as Flux's controllers would hand them to a unit.

`Artifacts` answers "which files does this source hold at this revision": the repository's own
GitRepository (the revision minus what its ignore rules leave out, see `core.repo.sourceignore`),
a directory given for another source, and the ExternalArtifacts an ArtifactGenerator composes
from those (see `core.repo.generator`). Each is a `FileView`, built once per revision and rule set
and shared by every unit that reads it; nothing is copied to disk. It decides nothing about which
source a unit means (that is the renderer's job) and starts no process.

Two revisions of one repository mostly hold the same paths under the same ignore rules: given
the verdicts of an earlier revision, a path both revisions hold keeps that revision's verdict
when the rule set is the same (every `.sourceignore` and `spec.ignore` identical), and only the
other paths are matched against the rules. A verdict depends on nothing but the path and the
rules, so the earlier revision may be any: the one given (`like`), else the last one this process
filtered under the same `spec.ignore` (a warm process previews one revision after another; the
rules of a fleet of 100 clusters take ~0.1 s to match against its ~50,000 paths).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from core.host.files import DirectorySource
from core.repo import sourceignore
from core.repo.generator import GeneratorSpec, compose
from core.repo.git import Tree
from core.repo.view import FileView, made_id

__all__ = ["Artifacts", "forget_verdicts"]

# A directory standing in for a source is read whole into a view; bound it (hostile content).
_MAX_DIRECTORY_FILES = 100_000
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# The last verdicts per `spec.ignore`, whatever the revision; a few `spec.ignore`s at most.
_RECENT: dict[str | None, _Verdicts] = {}
_RECENT_KEPT = 8
_RECENT_LOCK = threading.Lock()


class Artifacts:
    """Views of the source artifacts of one revision, cached per rule set."""

    def __init__(
        self, tree: Tree, read_blob: Callable[[str], bytes], *, like: Artifacts | None = None
    ) -> None:
        """`like`: an earlier revision's artifacts, whose ignore verdicts may be reused."""
        self.tree = tree
        self.read_blob = read_blob
        self._lock = threading.Lock()
        self._repository: dict[str | None, FileView] = {}
        self._verdicts: dict[str | None, _Verdicts] = {}
        self._like = like
        self._directories: dict[Path, FileView] = {}
        self._generated: dict[tuple[object, ...], tuple[GeneratorSpec, FileView]] = {}

    def repository(self, spec_ignore: str | None = None) -> FileView:
        """The repository's GitRepository artifact: no symlinks, and under its ignore rules."""
        with self._lock:
            found = self._repository.get(spec_ignore)
            if found is None:
                files = self.tree
                # Flux archives no symlinks (fluxcd/pkg's Archive skips them). The view still
                # knows them, so a build that names one is refused saying why.
                links = files.symlinks()
                regular = [path for path in files if path not in links] if links else list(files)
                kept = self._included(regular, spec_ignore)
                # All kept (no symlink, nothing ignored: the usual case), the view shares the
                # revision's listing and its directory index instead of indexing a copy.
                whole = not links and len(kept) == len(files)
                found = FileView(
                    "GitRepository",
                    files if whole else files.only(kept),
                    self.read_blob,
                    symlinks=links,
                    identity=_identity(files.revision, spec_ignore),
                )
                self._repository[spec_ignore] = found
            return found

    def _included(self, regular: list[str], spec_ignore: str | None) -> list[str]:
        """The paths the artifact keeps, reusing `like`'s verdicts under the same rules."""
        files = self.tree
        rules = _rule_set(files, spec_ignore)
        like = self._like._verdicts.get(spec_ignore) if self._like is not None else None
        # Held for one computation only: a chain of revisions must not keep every one alive.
        self._like = None
        if like is None:
            with _RECENT_LOCK:
                like = _RECENT.get(spec_ignore)

        def read(path: str) -> bytes:
            return self.read_blob(files[path])

        if like is None or like.rules != rules:
            kept = sourceignore.included(regular, read, spec_ignore)
        else:
            # The same rules: only the paths the earlier revision did not hold are matched.
            new = [path for path in regular if path not in like.seen]
            matcher = sourceignore.rules_of(regular, read, spec_ignore) if new else None
            fresh = {path for path in new if matcher is not None and not matcher.ignored(path)}
            kept = [path for path in regular if path in fresh or path in like.kept]
        verdicts = _Verdicts(rules, frozenset(regular), frozenset(kept))
        self._verdicts[spec_ignore] = verdicts
        with _RECENT_LOCK:
            if spec_ignore not in _RECENT and len(_RECENT) >= _RECENT_KEPT:
                del _RECENT[next(iter(_RECENT))]  # the oldest
            _RECENT[spec_ignore] = verdicts
        return kept

    def directory(self, root: Path) -> FileView:
        """A directory given for a source (`--source`), as a view; symlinks are left out."""
        with self._lock:
            found = self._directories.get(root)
            if found is None:
                found = self._directories[root] = _directory_view(root, self.read_blob)
            return found

    def generated(
        self, generator: GeneratorSpec, name: str, sources: Mapping[str, FileView]
    ) -> FileView:
        """The ExternalArtifact `name` that `generator` composes from these source views."""
        artifact = generator.artifact(name)
        if artifact is None:
            raise KeyError(name)
        # Parsed generators are kept by the renderer for the whole revision; the entry holds the
        # generator too, so its id cannot be reused while the entry lives.
        key = (id(generator), name, tuple(sorted((a, id(v)) for a, v in sources.items())))
        with self._lock:
            entry = self._generated.get(key)
        if entry is None:
            entry = (generator, compose(generator, artifact, sources, self.read_blob))
            with self._lock:
                self._generated[key] = entry
        return entry[1]


def forget_verdicts() -> None:
    """Drop the verdicts kept for the next revision (for tests that filter a revision afresh)."""
    with _RECENT_LOCK:
        _RECENT.clear()


def _identity(revision: str, spec_ignore: str | None) -> str | None:
    """Name the artifact of a commit under ignore rules; None unless `revision` is an object id.

    A full object id names the revision's content for good (its ignore files are part of it);
    a branch or a short id may name other content tomorrow.
    """
    if not _OBJECT_ID.fullmatch(revision):
        return None
    rules = "-" if spec_ignore is None else "+" + spec_ignore
    return hashlib.sha256(f"GitRepository\0{revision}\0{rules}".encode()).hexdigest()


@dataclass(frozen=True)
class _Verdicts:
    """Which paths a revision's artifact keeps, under which rule set."""

    rules: tuple[object, ...]
    seen: frozenset[str]
    kept: frozenset[str]


def _rule_set(tree: Tree, spec_ignore: str | None) -> tuple[object, ...]:
    """What decides the verdicts: every `.sourceignore` (path and content id) and `spec.ignore`."""
    files = tuple(
        sorted(
            (path, tree[path])
            for path in tree
            if path.rpartition("/")[2] == sourceignore.IGNORE_FILE
        )
    )
    return (files, spec_ignore)


def _directory_view(root: Path, read_blob: Callable[[str], bytes]) -> FileView:
    source = DirectorySource(root)
    files: dict[str, str] = {}
    made: dict[str, bytes] = {}
    pending = [""]
    while pending:
        directory = pending.pop()
        for name in source.listdir(directory):
            path = f"{directory}/{name}" if directory else name
            if source.is_dir(path):
                pending.append(path)
            elif source.is_file(path):
                content = source.read(path)
                content_id = made_id(content)
                files[path] = content_id
                made[content_id] = content
                if len(files) > _MAX_DIRECTORY_FILES:
                    limit = _MAX_DIRECTORY_FILES
                    raise InputError(f"a source directory holds more than {limit} files")
    return FileView("directory", files, read_blob, made=made, origins={p: "" for p in files})
