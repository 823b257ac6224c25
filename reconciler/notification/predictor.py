"""The offline preview of a Kustomization's last applied revision -> the one being applied.

Two `lifecycle.Predictor`s run the shared engine's preview (`core.preview.run_preview`, through
the render cache, in changed-only mode: units the change cannot affect are proven unchanged
without rendering) for one cluster entry point and return the unit's plan; the preview a pull
request showed and this one are the same computation over the same two trees:

- `ArtifactPredictor`, the controller's: the trees are the source artifacts the controller itself
  reconciled, kept by `revisions.RevisionStore` (`record` is called with each unpacked artifact);
- `RepositoryPredictor`: a local git repository holding both commits (a clone of the source).

They read files and render; they never touch a cluster. A revision that is not kept, or a unit
the preview does not have, gives None (nothing to compare).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.changes import UnitPlan
from core.errors import TidegateError
from core.model import UnitKind, UnitRef
from core.preview import PreviewRequest, run_preview
from core.render.engine import RenderEngine
from core.repo.git import Repository
from reconciler.notification.lifecycle import sha_of
from reconciler.notification.revisions import RevisionStore, source_key

__all__ = ["ArtifactPredictor", "RepositoryPredictor"]


class RepositoryPredictor:
    """Previews over one repository and one cluster entry point (`clusters/production`)."""

    def __init__(self, repository: Path, cluster: str, engine: RenderEngine) -> None:
        self._repository = repository
        self._cluster = cluster
        self._engine = engine

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        """The unit's previewed changes from `previous` to `revision` (`main@sha1:<hex>`)."""
        base, head = sha_of(previous), sha_of(revision)
        if base is None or head is None:
            return None
        return _unit_plan(self._repository, base, head, self._cluster, self._engine, unit)


class ArtifactPredictor:
    """Previews over the source trees the controller kept, for one cluster entry point."""

    def __init__(self, store: RevisionStore, cluster: str, engine: RenderEngine) -> None:
        self._store = store
        self._cluster = cluster
        self._engine = engine
        self._sources: dict[UnitRef, str] = {}
        self._lock = threading.Lock()

    def record(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        """Keep `tree`, the unpacked artifact of `revision` the Kustomization is reconciling."""
        commit = sha_of(revision)
        meta = kustomization.get("metadata") or {}
        unit = UnitRef(
            UnitKind.KUSTOMIZATION, str(meta.get("namespace", "")), str(meta.get("name", ""))
        )
        source = source_key(kustomization)
        with self._lock:
            self._sources[unit] = source
        if commit is not None:
            self._store.record(source, commit, tree)

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        """The unit's previewed changes from `previous` to `revision`, when both are kept."""
        base, head = sha_of(previous), sha_of(revision)
        with self._lock:
            source = self._sources.get(unit)
        if base is None or head is None or source is None:
            return None
        base_ref, head_ref = self._store.ref(source, base), self._store.ref(source, head)
        if base_ref is None or head_ref is None:
            return None
        return _unit_plan(self._store.path, base_ref, head_ref, self._cluster, self._engine, unit)


def _unit_plan(
    repository: Path, base: str, head: str, cluster: str, engine: RenderEngine, unit: UnitRef
) -> UnitPlan | None:
    # Only what the change can affect is rendered; the rest is proven unchanged from the files
    # the builds read (`core.render.affected`), with the same plan a full render gives.
    request = PreviewRequest(base=base, head=head, clusters=(cluster,), changed_only=True)
    try:
        with Repository(repository) as repo:
            # Fresh settings per preview: the cache stays warm, nothing else carries over.
            preview = run_preview(repo, request, engine.settings())
    except TidegateError:
        return None
    for plan_cluster in preview.clusters:
        for plan in plan_cluster.units:
            if plan.unit == unit:
                return plan
    return None
