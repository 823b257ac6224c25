"""The offline preview of a Kustomization's last applied revision -> the one being applied.

`RepositoryPredictor` is a `lifecycle.Predictor` over a local git repository holding both
revisions (a clone of the Kustomization's source): it runs the shared engine's preview
(`core.preview.run_preview`, through the render cache, so with a warm cache only the units whose
inputs changed are rendered) for one cluster entry point and returns the unit's plan. The preview
a pull request showed and this one are the same computation over the same two commits.

It reads the repository and renders; it never touches a cluster. A revision that is not a
commit of the repository, or a unit the preview does not have, gives None (nothing to compare).
"""

from __future__ import annotations

from pathlib import Path

from core.changes import UnitPlan
from core.errors import TidegateError
from core.model import UnitRef
from core.preview import PreviewRequest, run_preview
from core.render.engine import RenderEngine
from core.repo.git import Repository
from reconciler.notification.lifecycle import sha_of

__all__ = ["RepositoryPredictor"]


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
        request = PreviewRequest(base=base, head=head, clusters=(self._cluster,))
        try:
            with Repository(self._repository) as repo:
                # Fresh settings per preview: the cache stays warm, nothing else carries over.
                preview = run_preview(repo, request, self._engine.settings())
        except TidegateError:
            return None
        for cluster in preview.clusters:
            for plan in cluster.units:
                if plan.unit == unit:
                    return plan
        return None
