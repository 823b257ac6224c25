"""The source trees the controller reconciled, kept in a private git repository for predictions.

Flux's source controllers serve a source's latest artifact only, so when a new revision arrives
the tree of the one a Kustomization applied last is gone. To preview last applied -> new
(predicted vs applied) without a clone of the source, the controller keeps every unpacked
artifact it reconciles as a commit of a bare repository of its own: `record` imports the
directory (`git add --all --force` into a private index, `write-tree`, `commit-tree`) under
`refs/tidegate/<source>/<commit>`, where `<source>` is a digest of the source's kind, namespace
and name (never text the source chose) and `<commit>` the revision's commit hash. Files the
revisions share are stored once, so a revision costs about what it changed; a revision already
kept is not imported again. At most `keep` revisions per source are kept (older refs are deleted
and unreachable objects pruned now and then), so the store stays bounded.

Every git process runs through `core.host.command` with a time bound, no system or user
configuration and no hooks; `.gitignore` files in the artifact are ignored (`--force`), so a
commit holds exactly the artifact's files. A tree holding a `.git` entry (which git would take as
an embedded repository) is not kept. It stores files only: it never renders and never reads a
cluster. A revision that cannot be kept is logged and left out; it never fails a reconcile.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import CommandError
from core.host.command import Limits, run

__all__ = ["RevisionStore", "source_key"]

_LOG = logging.getLogger(__name__)
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_PREFIX = "refs/tidegate"
# Unreachable objects are pruned after this many imports: often enough to stay bounded, rarely
# enough that a busy controller does not spend its time in `git gc`.
_PRUNE_EVERY = 32
# Fixed identity and date: the commit is named by its content, never by when it was kept.
_COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "tidegate",
    "GIT_AUTHOR_EMAIL": "tidegate@localhost",
    "GIT_AUTHOR_DATE": "1970-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "tidegate",
    "GIT_COMMITTER_EMAIL": "tidegate@localhost",
    "GIT_COMMITTER_DATE": "1970-01-01T00:00:00Z",
}
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


def source_key(kustomization: Mapping[str, Any]) -> str:
    """The store's name for a Kustomization's source: a digest of kind, namespace and name."""
    meta = kustomization.get("metadata") or {}
    spec = kustomization.get("spec") or {}
    ref = spec.get("sourceRef") if isinstance(spec, Mapping) else None
    ref = ref if isinstance(ref, Mapping) else {}
    namespace = str(ref.get("namespace") or meta.get("namespace") or "")
    identity = f"{ref.get('kind', '')}/{namespace}/{ref.get('name', '')}"
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


class RevisionStore:
    """Source trees by source and commit, in a bare repository under `root`."""

    def __init__(self, root: Path, *, keep: int = 8, timeout: float = 120.0) -> None:
        self._root = root
        self._keep = keep
        self._lock = threading.Lock()
        self._limits = Limits(timeout=timeout, env={**_GIT_ENV, **_COMMIT_ENV})
        self._kept: dict[str, list[str]] = {}
        self._imports = 0
        self._ready = False

    @property
    def path(self) -> Path:
        """The bare repository (open it with `core.repo.git.Repository` to read a revision)."""
        return self._root

    def ref(self, source: str, commit: str) -> str | None:
        """The ref of `commit` of `source` when the store holds it, else None.

        Answered from memory: the refs are read once when the store is first used (only this
        store writes them), so a lookup starts no process.
        """
        if not _SHA.fullmatch(commit) or not re.fullmatch(r"[0-9a-f]{24}", source):
            return None
        with self._lock:
            if not self._ready:
                if not (self._root / "HEAD").is_file():
                    return None
                try:
                    self._init()
                except CommandError as exc:
                    _LOG.warning("kept revisions not readable: %s", exc)
                    return None
            kept = commit in self._kept.get(source, ())
        return f"{_PREFIX}/{source}/{commit}" if kept else None

    def record(self, source: str, commit: str, tree: Path) -> bool:
        """Keep `tree` as `commit` of `source`; True when it is (now or already) kept."""
        if not _SHA.fullmatch(commit) or not re.fullmatch(r"[0-9a-f]{24}", source):
            return False
        if self.ref(source, commit) is not None:
            return True
        if _has_git_entry(tree):
            _LOG.warning("revision %s not kept for predictions: it holds a .git entry", commit)
            return False
        try:
            with self._lock:
                self._init()
                # Another reconcile of the same revision may have kept it meanwhile.
                if commit not in self._kept.get(source, ()):
                    self._import(source, commit, tree)
        except CommandError as exc:
            _LOG.warning("revision %s not kept for predictions: %s", commit, exc)
            return False
        return True

    def _init(self) -> None:
        if self._ready:
            return
        if not (self._root / "HEAD").is_file():
            self._root.mkdir(parents=True, exist_ok=True)
            run(["git", "init", "--quiet", "--bare", str(self._root)], limits=self._limits)
            self._git("config", "core.hooksPath", os.devnull)
        for line in self._git("for-each-ref", "--format=%(refname)", _PREFIX).decode().split():
            _, _, rest = line.partition(f"{_PREFIX}/")
            source, _, commit = rest.partition("/")
            self._kept.setdefault(source, []).append(commit)
        self._ready = True

    def _import(self, source: str, commit: str, tree: Path) -> None:
        index = self._root / f"index-{threading.get_ident()}"
        env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(tree)}
        try:
            self._git("add", "--all", "--force", "--", ".", cwd=tree, env=env)
            tree_id = self._git("write-tree", env=env).decode().strip()
        finally:
            index.unlink(missing_ok=True)
        made = self._git("commit-tree", tree_id, "-m", commit).decode().strip()
        self._git("update-ref", f"{_PREFIX}/{source}/{commit}", made)
        kept = self._kept.setdefault(source, [])
        kept.append(commit)
        while len(kept) > self._keep:
            self._git("update-ref", "-d", f"{_PREFIX}/{source}/{kept.pop(0)}")
        self._imports += 1
        if self._imports % _PRUNE_EVERY == 0:
            self._git("gc", "--quiet", "--prune=now")

    def _git(
        self,
        *args: str,
        ok: tuple[int, ...] = (0,),
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> bytes:
        limits = self._limits
        if env:
            limits = Limits(timeout=limits.timeout, env={**limits.env, **env})
        argv = ["git", f"--git-dir={self._root}", *args]
        return run(argv, cwd=cwd or self._root, limits=limits, ok_codes=ok)


def _has_git_entry(tree: Path) -> bool:
    return any(".git" in dirs or ".git" in files for _, dirs, files in os.walk(tree))
