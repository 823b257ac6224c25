"""Drift: where a plan against the cluster parts from the pull request's own plan.

Both are `Preview`s of the same head: one against the base revision (offline), one against the
cluster (`core.plan.live`). An object whose action differs between them is drift: the cluster is
not what the base revision says (an edit by hand, an object kept in an inventory after leaving
Git, a field another controller writes). An object the live plan shows only as existing and not
managed by Flux (`core.plan.live.UNMANAGED`) is no drift row: what the cluster holds of it is not
the pull request's to see. Pure: identities and actions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.changes import Action, ClusterPlan, Preview, UnitPlan
from core.model import ObjectRef, UnitRef
from core.plan.live import UNMANAGED

__all__ = ["Drift", "drift_between"]


@dataclass(frozen=True)
class Drift:
    """One object the cluster would see change differently from what the pull request shows."""

    cluster: str
    unit: UnitRef
    ref: ObjectRef
    live: Action | None
    """What applying head does to the cluster; None: nothing."""
    previewed: Action | None
    """What the offline preview (base -> head) shows; None: nothing."""


def drift_between(live: Preview, offline: Preview) -> tuple[Drift, ...]:
    """Objects whose change against the cluster differs from their change in the preview."""
    previewed = {
        (cluster.path, unit.unit): _actions(unit)
        for cluster in offline.clusters
        for unit in cluster.units
    }
    drift: list[Drift] = []
    for cluster in live.clusters:
        for unit in cluster.units:
            drift.extend(_unit_drift(cluster, unit, previewed.get((cluster.path, unit.unit), {})))
    return tuple(drift)


def _unit_drift(
    cluster: ClusterPlan, unit: UnitPlan, previewed: Mapping[ObjectRef, Action]
) -> list[Drift]:
    live = _actions(unit)
    hidden = {change.ref for change in unit.changes if change.note == UNMANAGED}
    return [
        Drift(cluster.path, unit.unit, ref, live.get(ref), previewed.get(ref))
        for ref in sorted(set(live) | set(previewed))
        if live.get(ref) != previewed.get(ref) and ref not in hidden
    ]


def _actions(unit: UnitPlan) -> dict[ObjectRef, Action]:
    return {change.ref: change.action for change in unit.changes}
