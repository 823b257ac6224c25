"""What makes a Kustomization reconcile besides its own changes: a new artifact of its source.

`source_revision_watch(kind)` is the loop `Watch` of Flux's SourceRevisionChangePredicate: when
a source's `status.artifact.revision` changes (or the source appears or goes), every cached
Kustomization whose `spec.sourceRef` names that source (the namespace defaulting to the
Kustomization's own) is enqueued. Reads only the cache; decides nothing about the reconcile.
"""

from __future__ import annotations

from typing import Any

from core.cluster.fluxobjects import KUSTOMIZATION, FluxKind
from reconciler.informer import Cache
from reconciler.loop import Watch

__all__ = ["artifact_revision", "source_revision_watch"]

Obj = dict[str, Any]


def artifact_revision(obj: Obj | None) -> str:
    """The source's current artifact revision ('' when it has none)."""
    artifact = ((obj or {}).get("status") or {}).get("artifact") or {}
    return str(artifact.get("revision") or "") if isinstance(artifact, dict) else ""


def source_revision_watch(kind: FluxKind) -> Watch:
    """Enqueue the Kustomizations of a `kind` source when its artifact revision changes."""

    def changed(old: Obj | None, new: Obj | None) -> bool:
        return artifact_revision(old) != artifact_revision(new)

    def dependents(source: Obj, cache: Cache) -> list[tuple[str, str]]:
        meta = source.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        found = []
        for ks in cache.list(KUSTOMIZATION):
            ks_meta = ks.get("metadata") or {}
            ref = (ks.get("spec") or {}).get("sourceRef") or {}
            if not isinstance(ref, dict) or ref.get("kind") != kind.kind:
                continue
            if ref.get("name") == name and (ref.get("namespace") or ks_meta.get("namespace")) == (
                namespace
            ):
                found.append((str(ks_meta.get("namespace", "")), str(ks_meta.get("name", ""))))
        return found

    return Watch(kind, changed, dependents)
