"""The offline preview of one Flux Kustomization between two revisions of its source.

The reconciler applies one Kustomization at a time, so its prediction needs that unit's change
only: `preview_unit` renders the unit's spec at the base and at the head revision through the
shared engine (`core.render.unit.UnitRenderer`, the render cache, the masking boundary: only
masked renders are cached, compared or planned) and plans the two renders with the cluster
preview's planner (`core.plan.plan.plan_cluster`). It is the computation a pull request's
preview makes for that unit, without discovering and preparing the rest of the cluster, so its
cost grows with the unit, not with the fleet.

A unit whose render needs objects another unit renders (`postBuild.substituteFrom` a
`cluster-vars` ConfigMap, a source defined elsewhere) is rendered again with the objects of its
cluster entry point's root unit, when the entry point is known (`root`), as discovery would hand
them to it; the root's render is one more cache lookup per side. What that does not resolve is
not guessed: it gives `NEEDS_CLUSTER`, and the caller previews the whole cluster entry point
instead, or nothing. Only Kustomizations are previewed here (the reconciler applies nothing
else).

The trust rules of `core.preview` hold: the base may fetch from any host, the head only from the
hosts the base used and those `.tidegate.yaml` at the base allows. It reads files and renders;
it never touches a cluster.
"""

from __future__ import annotations

import dataclasses
import enum
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.budgets import Deadline
from core.changes import UnitPlan
from core.config import CONFIG_FILE, FetchConfig, parse_fetch_config
from core.host.paths import flux_path
from core.plan import plan
from core.render.unit import RenderSettings, UnitRenderer
from core.repo import discovery
from core.repo.artifacts import Artifacts
from core.repo.discovery import Pending
from core.units import ClusterRender, KustomizationSpec, RenderedUnit

__all__ = ["NEEDS_CLUSTER", "NeedsCluster", "Revision", "preview_unit"]


class NeedsCluster(enum.Enum):
    """The unit's render needs objects other units render: only a cluster preview can say."""

    NEEDS_CLUSTER = "needs-cluster"


NEEDS_CLUSTER = NeedsCluster.NEEDS_CLUSTER


@dataclass(frozen=True)
class Revision:
    """One side of the preview: the source's files at a revision, and the unit's spec there."""

    artifacts: Artifacts
    """The revision's files; its views (ignore rules applied) may be shared between previews."""
    spec: KustomizationSpec
    """The Kustomization as the controller applied this revision: its own object, not its
    parent's render."""


def preview_unit(
    base: Revision, head: Revision, settings: RenderSettings, *, root: str = ""
) -> UnitPlan | NeedsCluster:
    """Plan one Kustomization from `base` to `head`.

    `root` is the cluster entry point (`clusters/NAME`), when known.
    """
    if settings.deadline is None:
        settings = dataclasses.replace(
            settings, deadline=Deadline(settings.options.budgets.timeout)
        )
    trusted = settings.with_options(
        fetch_policy=dataclasses.replace(settings.options.fetch_policy, allowed_hosts=None)
    )
    with (
        settings.chart_puller.held(),
        ThreadPoolExecutor(max(1, settings.options.jobs), thread_name_prefix="render") as pool,
    ):
        before = _render(base, trusted, pool, root)
        if before is None:
            return NEEDS_CLUSTER
        allowed = [*settings.chart_puller.hosts_used, *_config(base.artifacts).allow_hosts]
        head_settings = settings.with_options(
            fetch_policy=settings.options.fetch_policy.allowing(allowed)
        )
        after = _render(head, head_settings, pool, root)
        if after is None:
            return NEEDS_CLUSTER
    path = head.spec.path
    planned = plan.plan_cluster(
        ClusterRender(path, {before.unit: before}), ClusterRender(path, {after.unit: after})
    )
    return planned.units[0]


def _config(artifacts: Artifacts) -> FetchConfig:
    """The `fetch:` settings of `.tidegate.yaml` at the base (as `core.preview.base_config`)."""
    blob = artifacts.tree.get(CONFIG_FILE)
    if blob is None:
        return FetchConfig()
    return parse_fetch_config(artifacts.read_blob(blob), file=CONFIG_FILE)


def _render(
    revision: Revision, settings: RenderSettings, pool: ThreadPoolExecutor, root: str
) -> RenderedUnit | None:
    """The unit rendered at one revision from its own source; None when it needs other units."""
    spec, tree = revision.spec, revision.artifacts.tree
    renderer = UnitRenderer(settings, revision.artifacts, pool=pool)
    try:
        # The unit's own source is the repository: the kept tree is that source's artifact.
        [result] = renderer([spec], {}, spec.source)
        if isinstance(result, Pending) and root and tree.is_dir(flux_path(root)):
            # As discovery would: the root is rendered first, and its objects are known to all.
            [entry] = renderer([discovery.root_spec(root)], {}, None)
            if not isinstance(entry, Pending) and entry.objects is not None:
                [result] = renderer([spec], entry.objects, spec.source)
    finally:
        renderer.close()
    if isinstance(result, Pending):
        return None
    # As discovery records it: the spec's graph facts travel with the render.
    return dataclasses.replace(
        result, depends_on=spec.depends_on, source=spec.source, file=spec.file or result.file
    )
