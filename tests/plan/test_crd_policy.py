"""helm-controller's CRD policies for a chart's crds/ directory, as the planner applies them."""

from __future__ import annotations

import dataclasses

import pytest

from core.changes import Action, UnitPlan, UnitStatus
from core.model import Manifest
from core.plan import plan as planning
from core.units import RenderedUnit
from tests.plan.builders import ROOT, cluster, flux_object, hr, hr_ref, ks

PODINFO = hr_ref("podinfo")


def crd(version: str, *, name: str = "widgets.example.com", from_chart: bool = True) -> Manifest:
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": "example.com", "versions": [{"name": version}]},
    }
    return Manifest("apiextensions.k8s.io/v1", body, "releases.yaml" if from_chart else None)


def release(*manifests: Manifest, install: str = "Create", upgrade: str = "Create") -> RenderedUnit:
    """A HelmRelease render; CRDs whose source is set come from the chart's crds/."""
    unit = hr("podinfo", *manifests, parent=ROOT)
    chart_crds = frozenset(m.ref for m in manifests if m.source)
    return dataclasses.replace(
        unit, install_crds=install, upgrade_crds=upgrade, chart_crds=chart_crds
    )


def plan(base: RenderedUnit | None, head: RenderedUnit | None) -> UnitPlan:
    root = ks("flux-system", flux_object(PODINFO), parent=None)
    before = cluster(root, *([base] if base else []))
    after = cluster(root, *([head] if head else []))
    result = planning.plan_cluster(before, after)
    return next(u for u in result.units if u.unit == PODINFO)


@pytest.mark.parametrize("policy", ["Create", "Skip"])
def test_a_changed_chart_crd_is_not_applied_on_upgrade_by_default_or_skip(policy: str) -> None:
    unit = plan(release(crd("v1")), release(crd("v2"), upgrade=policy))

    assert unit.changes == ()
    assert unit.skipped == 1
    assert unit.status is UnitStatus.RENDERED
    [notice] = unit.notices
    assert "CustomResourceDefinition/widgets.example.com" in notice
    assert f"upgrade.crds is {policy}" in notice


def test_create_replace_applies_a_changed_chart_crd() -> None:
    unit = plan(release(crd("v1")), release(crd("v2"), upgrade="CreateReplace"))

    [change] = unit.changes
    assert change.action is Action.UPDATE
    assert unit.notices == ()


def test_a_templated_crd_is_an_ordinary_update() -> None:
    unit = plan(release(crd("v1", from_chart=False)), release(crd("v2", from_chart=False)))

    assert [c.action for c in unit.changes] == [Action.UPDATE]


def test_new_chart_crds_are_created_unless_the_policy_is_skip() -> None:
    created = plan(release(), release(crd("v1")))
    assert [c.action for c in created.changes] == [Action.CREATE]

    skipped = plan(release(), release(crd("v1"), upgrade="Skip"))
    assert skipped.changes == ()
    assert "upgrade.crds is Skip" in skipped.notices[0]


def test_install_policy_decides_for_a_new_release() -> None:
    unit = plan(None, release(crd("v1"), install="Skip", upgrade="CreateReplace"))

    assert unit.status is UnitStatus.ADDED
    assert unit.changes == ()
    assert "install.crds is Skip" in unit.notices[0]


def test_a_chart_crd_that_leaves_the_chart_is_orphaned_not_deleted() -> None:
    unit = plan(release(crd("v1")), release())

    [change] = unit.changes
    assert change.action is Action.ORPHAN
    assert change.note is not None
    assert "never deletes" in change.note
