"""Carry a preview's base renders over to its head where the change cannot reach them.

A preview renders the same fleet twice: at the base and at the head. The render cache would find
most head units again (their files are unchanged), but only after checking, unit by unit, the
digest of every input file and the listing of every directory above them. `Carry` answers that
check from the change itself instead: it keeps each render the base found or made, with the
files it read, and hands it to the head when the change touches none of those files and adds or
removes no entry in a directory the cache watches for it (`watched_dirs`). That is the cache's
own validity rule applied to the diff, so the head gets exactly the render its lookup would have
found, for the same key (spec, variables, tools, ignore rules).

Only renders of this repository's own files are carried, and only when remote bases are off: a
remote base's content is in no file the diff can name. Failed renders are never carried (they
are not cached either); they run again at the head.

A whole cluster is carried the same way (`Carry.cluster`): when every unit of the base's cluster
rendered, from this repository's files or a chart repository's chart (HTTP, keyed by URL, name
and version like any cached chart), and the change reaches none of them, discovering the head
would render every unit into the same objects and find the same units: the head takes the base's
cluster as it is, and the planner skips its units by identity. Anything else (a failure, an OCI
artifact, a `--source` directory, an ExternalArtifact, a HelmChart) is discovered again.

This module decides from paths only: it reads no file and starts no process.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Collection, Iterable, Sequence

from core.model import FLUX_SOURCE_GROUP, Manifest, ObjectRef, UnitKind
from core.render.cache import CachedRender, watched_dirs
from core.render.ocisource import is_oci_helm_repository
from core.repo.git import Tree
from core.units import ClusterRender, RenderedUnit, SourceRef

__all__ = ["Carry", "changed_entries", "changed_paths", "plain"]


def changed_paths(base: Tree, head: Tree) -> frozenset[str]:
    """Every file whose content or mode differs (a rename is its old and its new path).

    Taken from git's diff when one listing was made from the other (`Tree.changes_against`),
    so that it costs what the change costs; compared file by file otherwise.
    """
    known = head.changes_against(base)
    if known is not None:
        return known
    changed = {path for path in base if path not in head}
    for path in head:
        if path not in base or base[path] != head[path] or base.mode(path) != head.mode(path):
            changed.add(path)
    return frozenset(changed)


def changed_entries(base: Tree, head: Tree, changed: Iterable[str]) -> frozenset[str]:
    """The files and directories that exist at one side only: they change their parent's listing."""
    found: set[str] = set()
    for path in changed:
        probe = path
        while probe:
            if (base.is_file(probe) or base.is_dir(probe)) != (
                head.is_file(probe) or head.is_dir(probe)
            ):
                found.add(probe)
            probe = posixpath.dirname(probe)
    return frozenset(found)


class Carry:
    """The base's renders of one preview, by cache key, for its head (thread-safe)."""

    def __init__(self, changed: frozenset[str], entries: frozenset[str]) -> None:
        """Decide against the `changed_paths` and `changed_entries` of the two revisions."""
        self.changed = changed
        self.entries = entries
        self.side = "base"
        self.carried = 0
        """Head renders taken from the base (for tests and progress)."""
        self.clusters = 0
        """Head clusters taken whole from the base (for tests and progress)."""
        self._renders: dict[str, CachedRender] = {}
        self._lock = threading.Lock()

    @classmethod
    def between(cls, base: Tree, head: Tree) -> Carry:
        """The carry for a preview of `head` against `base`."""
        changed = changed_paths(base, head)
        return cls(changed, changed_entries(base, head, changed))

    def to_head(self) -> None:
        """Turn to the head: from now on renders are handed out, never kept."""
        self.side = "head"

    def keep(self, key: str, render: CachedRender) -> None:
        """Keep a render the base found in the cache or made (the head may reuse it)."""
        if self.side == "base" and not self.invalidates(render.inputs):
            with self._lock:
                self._renders[key] = render

    def take(self, key: str) -> CachedRender | None:
        """Return the head's render for `key` from the base, or None to look it up."""
        if self.side != "head":
            return None
        with self._lock:
            found = self._renders.get(key)
            if found is not None:
                self.carried += 1
        return found

    def cluster(self, base: ClusterRender, sources: Collection[SourceRef]) -> bool:
        """Tell whether the head's discovery of a cluster would give the base's, unit for unit.

        `sources` are the sources given as directories (`--source`): their content is not in
        the repository.
        """
        if self.side != "head" or not base.units:
            return False
        units = list(base.units.values())
        if any(unit.objects is None for unit in units):
            return False
        # A kept cluster was kept because every unit was `plain` without source directories
        # (`core.render.clusters`): asking again would read the renders of every HelmRepository.
        named = bool(base.kept_key) and not sources
        return all(
            (named or plain(unit, units, sources)) and not self.invalidates(unit.inputs)
            for unit in units
        )

    def invalidates(self, inputs: frozenset[str]) -> bool:
        """Tell whether the change can invalidate a render with these inputs, by the cache's rule.

        The cache reuses a render while its input files hold the same bytes and the directories
        they sit in (and those above them) list the same names.
        """
        if not self.changed.isdisjoint(inputs):
            return True
        if not self.entries:
            return False
        dirs = set(watched_dirs(inputs))
        return any(posixpath.dirname(entry) in dirs for entry in self.entries)


def plain(
    unit: RenderedUnit, units: Sequence[RenderedUnit], sources: Collection[SourceRef]
) -> bool:
    """Tell whether a rendered unit's content is all named by its inputs or its cache key.

    `units` are the cluster's units: a HelmRelease's HelmRepository is looked up among them.
    """
    source = unit.source
    if unit.error is not None or source is None or source in sources:
        return False
    if source.kind == "GitRepository":
        return True
    if unit.unit.kind is not UnitKind.HELM_RELEASE or source.kind != "HelmRepository":
        return False
    ref = ObjectRef(FLUX_SOURCE_GROUP, "HelmRepository", source.namespace, source.name)
    repository = _rendered(units, ref)
    return repository is not None and not is_oci_helm_repository(repository)


def _rendered(units: Sequence[RenderedUnit], ref: ObjectRef) -> Manifest | None:
    """The object the cluster renders under `ref` (the last unit's, as in a merged mapping).

    Looked up unit by unit: merging every unit's objects would load every stored body.
    """
    for unit in reversed(units):
        if unit.objects is not None and ref in unit.objects:
            return unit.objects[ref]
    return None
