"""The live preview: the head revision planned against a cluster's real state, drift set apart.

`tidegate preview --live` calls this. It runs the ordinary offline preview (base -> head, the
pull request's change), renders head again (a render-cache hit), and plans each cluster's head
against the cluster through `core.plan.live`: each Kustomization's before side is what its
`status.inventory` lists, read from the cluster, so prunes are exact (as `flux diff ks`), and its
after side is a server-side dry-run apply. Then the two plans are set side by side: an object
whose live change differs from the pull request's change is drift (the cluster is not what the
base revision says: an edit by hand, an object kept in an inventory after leaving Git, a field
another controller writes).

It reads and dry-runs through the port only; it never writes to the cluster. Objects are masked
with the render cache's key, as the renders are, so live and rendered Secrets compare by token;
every live body passes `core.plan.live_mask` (values substituted from cluster Secrets masked).
With `trusted_only` (the PR app always sets it), only what Flux already manages from this
repository is shown live: inventories are read only for Kustomizations the base revision has too
(a Kustomization the pull request adds may be named like one another repository drives), and
live values only for the objects those inventories list (`core.plan.live`, `managed`). Any other
object the head names that exists live is said to exist and not be managed, with no values, no
diff and no drift row. Prune sets come from those inventories and stay shown.

Not covered: HelmReleases (withheld by `core.plan.live`) and Kustomizations present in the
cluster but gone from the head revision (their inventories are not expanded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.changes import Preview, UnitStatus
from core.cluster.port import ClusterError, NotFound
from core.errors import InputError
from core.inventory import Inventory
from core.model import UnitKind, UnitRef
from core.plan.drift import Drift, drift_between
from core.plan.live import LivePort, plan_live
from core.preview import PreviewRequest, render_revision, run_preview
from core.render.unit import RenderSettings
from core.repo.git import Repository
from core.secrets import Masker

__all__ = ["LivePreview", "inventories", "run_live_preview"]

_KUSTOMIZATION_API = "kustomize.toolkit.fluxcd.io/v1"


@dataclass(frozen=True)
class LivePreview:
    """Head against the cluster, the pull request's own change, and where they part."""

    live: Preview
    offline: Preview
    drift: tuple[Drift, ...]


def run_live_preview(
    repo: Repository,
    request: PreviewRequest,
    settings: RenderSettings,
    port: LivePort,
    *,
    progress: Callable[[str], None] | None = None,
    trusted_only: bool = False,
) -> LivePreview:
    """Preview `request` offline and against the cluster behind `port`."""
    offline = run_preview(repo, request, settings, progress=progress)
    if progress is not None:
        progress("cluster")
    head = repo.resolve(request.head)
    paths = [cluster.path for cluster in offline.clusters]
    renders = render_revision(repo, repo.tree(head), paths, settings)
    masker = Masker(settings.cache.masking_key(), known=settings.known_secrets)
    clusters = []
    for path, render in renders.items():
        if not trusted_only:
            clusters.append(plan_live(port, render, inventories(port, render.units), masker))
            continue
        added = _added(offline, path)
        found = inventories(port, {unit: None for unit in render.units if unit not in added})
        managed = frozenset(
            entry.ref for inventory in found.values() for entry in inventory.entries
        )
        clusters.append(plan_live(port, render, found, masker, managed))
    live = Preview(base="cluster", head=head, clusters=tuple(clusters))
    return LivePreview(live, offline, drift_between(live, offline))


def _added(offline: Preview, path: str) -> set[UnitRef]:
    """The units the pull request adds to cluster `path` (the base revision does not have)."""
    return {
        unit.unit
        for cluster in offline.clusters
        if cluster.path == path
        for unit in cluster.units
        if unit.status is UnitStatus.ADDED
    }


def inventories(port: LivePort, units: Mapping[UnitRef, object]) -> dict[UnitRef, Inventory]:
    """The `status.inventory` of each Kustomization among `units` that exists in the cluster."""
    found: dict[UnitRef, Inventory] = {}
    for unit in units:
        if unit.kind is not UnitKind.KUSTOMIZATION:
            continue
        try:
            obj = port.get(_KUSTOMIZATION_API, "Kustomization", unit.namespace, unit.name)
        except NotFound:
            continue
        except ClusterError as exc:
            raise InputError(f"cannot read it: {exc}", obj=f"Kustomization {unit}") from None
        try:
            found[unit] = Inventory.from_status(obj.get("status"))
        except InputError as exc:
            raise InputError(str(exc), obj=f"Kustomization {unit}") from None
    return found
