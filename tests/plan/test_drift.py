"""Drift between a plan against the cluster and the pull request's own plan, and its report."""

from __future__ import annotations

import json

from core.changes import Action, Change, ClusterPlan, Preview, UnitPlan, UnitStatus
from core.model import ObjectRef, UnitKind, UnitRef
from core.plan.drift import Drift, drift_between
from core.plan.live import UNMANAGED
from core.report.live import drift_markdown, with_drift_json

UNIT = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "apps")
SETTINGS = ObjectRef("", "ConfigMap", "web", "settings")
OLD = ObjectRef("", "ConfigMap", "web", "old")
EDITED = ObjectRef("apps", "Deployment", "web", "frontend")


def preview(*changes: tuple[Action, ObjectRef]) -> Preview:
    unit = UnitPlan(UNIT, UnitStatus.RENDERED, True, tuple(Change(a, r, "v1") for a, r in changes))
    return Preview("base", "head", (ClusterPlan("clusters/prod", (unit,)),))


def test_drift_is_every_object_whose_live_change_differs() -> None:
    live = preview((Action.UPDATE, SETTINGS), (Action.DELETE, OLD), (Action.UPDATE, EDITED))
    offline = preview((Action.UPDATE, SETTINGS), (Action.CREATE, EDITED))
    assert drift_between(live, offline) == (
        Drift("clusters/prod", UNIT, OLD, Action.DELETE, None),
        Drift("clusters/prod", UNIT, EDITED, Action.UPDATE, Action.CREATE),
    )
    assert drift_between(offline, offline) == ()


def test_an_object_shown_only_as_unmanaged_is_no_drift() -> None:
    # The offline plan leaves it alone; against the cluster the head takes it over. What the
    # cluster holds of it is not shown, so neither is a row saying how it differs.
    unmanaged = Change(Action.CREATE, EDITED, "apps/v1", note=UNMANAGED)
    unit = UnitPlan(UNIT, UnitStatus.RENDERED, True, (unmanaged, Change(Action.DELETE, OLD, "v1")))
    live = Preview("cluster", "head", (ClusterPlan("clusters/prod", (unit,)),))
    assert drift_between(live, preview()) == (
        Drift("clusters/prod", UNIT, OLD, Action.DELETE, None),
    )


def test_drift_is_reported_apart_in_markdown_and_json() -> None:
    drift = drift_between(preview((Action.DELETE, OLD)), preview())
    section = drift_markdown(drift)
    assert "### Drift" in section
    assert "| `clusters/prod` | `Kustomization/flux-system/apps` | `ConfigMap web/old` " in section
    assert "| delete | no change |" in section
    assert "no drift" in drift_markdown(())
    document = json.loads(with_drift_json('{"schemaVersion": 1}', drift))
    assert document["drift"] == [
        {
            "cluster": "clusters/prod",
            "unit": "Kustomization/flux-system/apps",
            "group": "",
            "kind": "ConfigMap",
            "namespace": "web",
            "name": "old",
            "live": "delete",
            "previewed": None,
        }
    ]
