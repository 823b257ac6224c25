"""Changed-only rendering: prove, without rendering, that a unit renders the same at both sides.

A preview compares two revisions. Most units of a fleet read no file the change touches, so their
objects are the same at base and head and cannot contribute a change. `Selection` proves that for
a Flux Kustomization from the files a build reads, and the unit is then reported `unchanged`
without running kustomize, on either side. The proof, made at the base:

- the unit builds from this repository (not an OCI artifact, an ExternalArtifact or a `--source`
  directory), with no remote base;
- the file defining its Flux object and the files defining its substitution sources are not
  changed, and no substituted value names a Flux group or a CRD;
- no changed path was consulted by the input walk (`core.render.walk`), which reads everything
  the build reads: a file read or tested, a directory listed or tested, or a directory above a
  changed path (a file added where a generated kustomization lists);
- none of the files the build reads mentions a Flux group (`fluxcd.io`) or a
  `CustomResourceDefinition`: the unit defines no unit, source or CRD, so no other unit's
  discovery, lookups or scopes depend on its objects.

At the head, a unit is proven unchanged only by the base's proof for the same spec, variables and
ignore rules; its walk is not repeated (nothing it consulted changed, so it reads the same).

What the walk cannot prove is checked once both sides are discovered (`Selection.recheck`), and a
cluster that fails a check is rendered again in full: a unit proven at one side only (discovery
changed), an object a unit looked up and did not find (a unit proven unchanged may define it),
objects that appear or disappear among rendered units (a duplicate or a move involving a unit
proven unchanged), and CRDs that differ. Changed `.tidegate.yaml` or ignore files turn the
selection off for the whole preview (`global_reason`).

Known limit: a unit proven unchanged is not rendered, so a problem that exists identically at
both sides inside it (a render failure, a scope notice, an object it shares with another unit)
is not reported; everything the change itself introduces is.

This module decides; it never starts a process and never reads outside the revision's views.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from core.config import CONFIG_FILE
from core.host.paths import normalize
from core.model import Manifest, ObjectRef, UnitRef
from core.render import kustomize
from core.render.cache import CachedRender, RenderCache, canonical_key, watched_dirs
from core.render.carry import changed_entries, changed_paths
from core.render.walk import kustomize_inputs
from core.repo.sourceignore import IGNORE_FILE
from core.repo.view import FileView
from core.scope import crd_scopes
from core.units import ClusterRender, KustomizationSpec, RenderedUnit

__all__ = [
    "UNCHANGED",
    "Footprint",
    "Selection",
    "changed_entries",
    "changed_paths",
    "global_reason",
    "proven_count",
]

UNCHANGED: Mapping[ObjectRef, Manifest] = MappingProxyType({})
"""The objects of every unit proven unchanged: one shared mapping, so the planner sees the same
render at both sides (and the objects are never needed: nothing else reads them)."""

# Text that makes a unit's objects matter to other units: Flux units and sources (every Flux
# group ends in fluxcd.io) and CRDs, which decide other objects' scopes.
_MARKERS = (b"fluxcd.io", b"CustomResourceDefinition")
_FLUX_DOMAIN = "fluxcd.io"
# Marks a consulted path among a stored footprint's inputs (see `Selection._footprint`).
_CONSULTED = "/."


def global_reason(changed: Iterable[str]) -> str | None:
    """Why no unit may be proven unchanged at all, or None.

    The preview's settings and the ignore rules decide what every unit's source holds, without
    being a file any walk reads.
    """
    for path in sorted(changed):
        if path == CONFIG_FILE:
            return f"{CONFIG_FILE} changed"
        if posixpath.basename(path) == IGNORE_FILE:
            return f"{path} changed"
    return None


class Footprint(NamedTuple):
    """What an input walk consulted: the files it found, and every path it asked about."""

    files: frozenset[str]
    consulted: frozenset[str]

    def touched_by(self, changed: Iterable[str]) -> str | None:
        """Return a changed path the walk could have seen, or None."""
        for path in changed:
            probe = path
            while True:
                if probe in self.consulted or probe in self.files:
                    return path
                if not probe:
                    break
                probe = posixpath.dirname(probe)
        return None


class _Recording:
    """A `FileSource` that records every path asked about (the walk's footprint)."""

    def __init__(self, source: FileView, normal: dict[str, str]) -> None:
        self.source = source
        self.consulted: set[str] = set()
        self._normal = normal

    def _note(self, path: str) -> str:
        key = self._normal.get(path)
        if key is None:
            # Walks ask about the same paths again and again (shared bases and components).
            key = self._normal[path] = normalize(path)
        self.consulted.add(key)
        return key

    def is_file(self, path: str) -> bool:
        return self.source.is_file(self._note(path))

    def is_dir(self, path: str) -> bool:
        return self.source.is_dir(self._note(path))

    def listdir(self, path: str) -> list[str]:
        return self.source.listdir(self._note(path))

    def read(self, path: str) -> bytes:
        return self.source.read(self._note(path))

    def is_symlink(self, path: str) -> bool:
        return self.source.is_symlink(self._note(path))


@dataclass(frozen=True)
class _Proof:
    """Why a spec renders the same at both sides: its footprint at the base."""

    footprint: Footprint
    inputs: frozenset[str]
    """Repository files the build reads, plus its substitution sources' files."""


class _Watched(Mapping[ObjectRef, Manifest]):
    """The objects rendered so far in a cluster, noting lookups that find nothing."""

    def __init__(self, objects: Mapping[ObjectRef, Manifest], missed: set[ObjectRef]) -> None:
        self._objects = objects
        self._missed = missed

    def __getitem__(self, ref: ObjectRef) -> Manifest:
        try:
            return self._objects[ref]
        except KeyError:
            if _FLUX_DOMAIN not in ref.group:
                # A unit proven unchanged defines no Flux object, but it may define this one.
                self._missed.add(ref)
            raise

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)


class Selection:
    """The units a change cannot affect, for one preview; shared by its base and head."""

    def __init__(self, changed: frozenset[str], entries: frozenset[str] = frozenset()) -> None:
        """Decide against the changed files and `changed_entries` of the two revisions."""
        self.changed = changed
        self.entries = entries
        self.side = "base"
        self.cluster = ""
        self._proofs: dict[str, _Proof] = {}
        self._missed: dict[tuple[str, str], set[ObjectRef]] = {}
        self._marked: dict[str, bool] = {}
        self._parsed: dict[bytes, Mapping[str, Any]] = {}
        self._remembered: dict[str, CachedRender] = {}
        self.on_walk: Callable[[], None] | None = None
        """Called before each input walk (the preview reads the base's files in bulk then)."""
        self._normal: dict[str, str] = {}

    def begin(self, cluster: str) -> None:
        """Say which cluster the next lookups and proofs belong to."""
        self.cluster = cluster

    def to_head(self) -> None:
        """Turn to the head: from now on, only the base's proofs prove a unit unchanged."""
        self.side = "head"

    def watch(self, objects: Mapping[ObjectRef, Manifest]) -> Mapping[ObjectRef, Manifest]:
        """Wrap a cluster's rendered objects so that lookups finding nothing are noted."""
        missed = self._missed.setdefault((self.side, self.cluster), set())
        return _Watched(objects, missed)

    def remember(self, key: str, render: CachedRender, read_from: frozenset[str]) -> None:
        """Keep a render the base found in the render cache, for the head to reuse unchecked.

        The cache found it because the files it read, and the listings of their directories, hold
        what they held when it was rendered; where the change touches none of those, the head's
        lookup would find it again, so the head skips that lookup.
        """
        if self.side == "base" and self.changed.isdisjoint(read_from):
            self._remembered[key] = render

    def reuse(self, key: str) -> CachedRender | None:
        """Return the head's render of a unit from the base's proof, or None to look it up."""
        if self.side != "head":
            return None
        render = self._remembered.get(key)
        if render is not None and not self._invalidates(render.inputs):
            return render
        proof = self._proofs.get(key)
        return CachedRender(UNCHANGED, proof.inputs) if proof is not None else None

    def prove(
        self,
        spec: KustomizationSpec,
        source: FileView,
        key: str,
        *,
        read_from: frozenset[str],
        values: Iterable[str],
        cache: RenderCache,
    ) -> frozenset[str] | None:
        """Return the repository inputs of a unit proven unchanged, or None to render it.

        `key` names everything but the files that decides the render (spec, variables, tools,
        ignore rules); `read_from` are the files defining its substitution sources, `values` the
        substituted values. The footprint of a unit that defines nothing other units read is
        kept in the render cache, so a later preview whose base still holds the same files
        proves it without walking again.
        """
        if self.side != "base":
            return None  # the head reuses proofs (`reuse`) and never makes new ones
        if spec.file in self.changed or not self.changed.isdisjoint(read_from):
            return None
        if any(marker.decode() in value for value in values for marker in _MARKERS):
            return None
        footprint = self._footprint(spec, source, canonical_key("proof", key), cache)
        if footprint is None or footprint.touched_by(self.changed) is not None:
            return None
        inputs = source.origins(footprint.files - read_from) | read_from
        self._proofs[key] = _Proof(footprint, inputs)
        return inputs

    def recheck(
        self, cluster: str, base: ClusterRender | None, head: ClusterRender | None
    ) -> str | None:
        """Return why a cluster must be rendered in full after all, or None when the proofs hold."""
        base_units = base.units if base is not None else {}
        head_units = head.units if head is not None else {}
        proven_base = {ref for ref, unit in base_units.items() if unit.objects is UNCHANGED}
        proven_head = {ref for ref, unit in head_units.items() if unit.objects is UNCHANGED}
        if not proven_base and not proven_head:
            return None
        if proven_base != proven_head:
            return "a unit was proven unchanged at one side only"
        for side in ("base", "head"):
            if self._missed.get((side, cluster)):
                return f"a lookup at {side} found nothing"
        if _plain_objects(base_units) != _plain_objects(head_units):
            return "objects appear or disappear among the rendered units"
        if _scopes(base_units) != _scopes(head_units):
            return "the CRDs differ"
        return None

    def _invalidates(self, inputs: frozenset[str]) -> bool:
        """Tell whether the change can invalidate a cached render, by the cache's own rule.

        The cache reuses a render while its input files hold the same bytes and the directories
        they sit in (and those above them) list the same names.
        """
        if not self.changed.isdisjoint(inputs):
            return True
        dirs = set(watched_dirs(inputs))
        return any(posixpath.dirname(entry) in dirs for entry in self.entries)

    def _footprint(
        self, spec: KustomizationSpec, source: FileView, key: str, cache: RenderCache
    ) -> Footprint | None:
        """The footprint of a unit whose files define nothing other units read, or None.

        Kept in the cache as a set of paths (`RenderCache.keep_inputs`, one file per unit): the
        files the walk found plus every consulted path with `/.` appended. The cache then watches
        each consulted path's listing and its parent's, so the kept footprint is found only while
        the walk would find it.
        """
        stored = cache.find_inputs(key, source)
        if stored is not None:
            return Footprint(
                frozenset(p for p in stored if not p.endswith(_CONSULTED)),
                frozenset(p[: -len(_CONSULTED)] for p in stored if p.endswith(_CONSULTED)),
            )
        footprint = self._walk(spec, source)
        if footprint is None:
            return None
        if any(self._mentions_markers(source, path) for path in footprint.files):
            return None
        marked = {path + _CONSULTED for path in footprint.consulted}
        cache.keep_inputs(key, source, footprint.files | marked)
        return footprint

    def _walk(self, spec: KustomizationSpec, source: FileView) -> Footprint | None:
        if self.on_walk is not None:
            self.on_walk()
        recording = _Recording(source, self._normal)
        try:
            root, components = kustomize.build_root(spec, recording)
            files = kustomize_inputs(
                recording, root, extra_components=components, parsed=self._parsed
            )
        except Exception:
            # Whatever the walk cannot follow, the render reports (or proves otherwise).
            return None
        if not files:
            return None
        return Footprint(files, frozenset(recording.consulted))

    def _mentions_markers(self, source: FileView, path: str) -> bool:
        content_id = source.files.get(path)
        if content_id is None:
            return False  # a missing file holds nothing (the build fails the same at both sides)
        found = self._marked.get(content_id)
        if found is None:
            content = source.read(path)
            found = self._marked[content_id] = any(marker in content for marker in _MARKERS)
        return found


def proven_count(renders: Mapping[str, ClusterRender]) -> int:
    """Count the units proven unchanged (not rendered) in a side's renders."""
    return sum(
        unit.objects is UNCHANGED for render in renders.values() for unit in render.units.values()
    )


def _plain_objects(units: Mapping[UnitRef, RenderedUnit]) -> frozenset[ObjectRef]:
    """Identities of non-Flux objects rendered by the units that were rendered."""
    found: set[ObjectRef] = set()
    for unit in units.values():
        objects = unit.objects
        if objects is None or objects is UNCHANGED:
            continue
        found.update(ref for ref in objects if _FLUX_DOMAIN not in ref.group)
    return frozenset(found)


def _scopes(units: Mapping[UnitRef, RenderedUnit]) -> dict[tuple[str, str], bool]:
    bodies: list[Mapping[str, Any]] = []
    for unit in units.values():
        objects = unit.objects or {}
        bodies.extend(
            objects[ref].body for ref in objects if ref.kind == "CustomResourceDefinition"
        )
    return crd_scopes(bodies)
