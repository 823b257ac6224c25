"""Planning a merge: the change set per cluster, unit and object.

Aspects covered:
- unit statuses: unchanged, rendered, added, removed, failed; cluster added or removed as a whole;
- object actions: create, update (diff and fields), delete (base prune decides), orphan (prune
  false, prune disabled by annotation or label in any case), move (one change on the receiving
  unit, with or without a body change, into an added unit, out of a removed unit);
- objects Flux skips (`reconcile: disabled`, `ssa: Ignore`) are left out and counted, for
  Kustomizations only; HelmReleases prune except `helm.sh/resource-policy: keep`;
- cascade: nested Kustomizations removed with their parent, a parent that orphans its child
  (prune false, prune disabled), deletion policies, suspended removed units, roots without a
  parent, a self-managed root;
- failing closed: a failed head render withholds its objects and never deletes its children's,
  a failed base render withholds creates, one-sided units under a failed parent, cluster errors,
  parent cycles, a Flux object still rendered at head;
- duplicates are cluster errors naming both units;
- suspended units are flagged; noise-only objects are counted, not reported as updates;
- ordering is deterministic; `plan_preview` combines clusters by path.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from core.changes import Action, Change, ClusterPlan, UnitPlan, UnitStatus
from core.errors import Failure
from core.model import UnitRef
from core.plan import plan as planning
from core.secrets import Masker
from core.units import ClusterRender, RenderedUnit, SourceRef
from tests.plan.builders import (
    CLUSTER,
    ROOT,
    cluster,
    configmap,
    deployment,
    flux_object,
    hr,
    hr_ref,
    ks,
    ks_ref,
    secret,
)

APPS = ks_ref("apps")
WEB = ks_ref("web")
DB = ks_ref("db")
REDIS = hr_ref("redis")


def _root(*children: UnitRef, prune: bool = True, annotations: dict[str, str] | None = None):
    """The root Kustomization, rendering the Flux objects of the given children."""
    return ks("flux-system", *(flux_object(c, annotations) for c in children), prune=prune)


def _unit(plan: ClusterPlan, ref: UnitRef) -> UnitPlan:
    return next(u for u in plan.units if u.unit == ref)


def _actions(unit: UnitPlan) -> list[tuple[str, str]]:
    return [(c.action.value, str(c.ref)) for c in unit.changes]


def _all_actions(plan: ClusterPlan) -> set[str]:
    return {c.action.value for u in plan.units for c in u.changes}


# Unit statuses and simple object actions.


def test_identical_renders_are_unchanged() -> None:
    render = cluster(_root(APPS), ks("apps", deployment(), configmap("settings")))

    plan = planning.plan_cluster(render, render)

    assert [(u.unit, u.status) for u in plan.units] == [
        (APPS, UnitStatus.UNCHANGED),
        (ROOT, UnitStatus.UNCHANGED),
    ]
    assert plan.errors == ()


def test_changed_object_is_an_update_with_diff_and_fields() -> None:
    base = cluster(_root(APPS), ks("apps", deployment(replicas=1)))
    head = cluster(_root(APPS), ks("apps", deployment(replicas=3)))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.status is UnitStatus.RENDERED
    [change] = apps.changes
    assert change.action is Action.UPDATE
    assert change.api_version == "apps/v1"
    assert change.fields == ("spec.replicas",)
    assert "+  replicas: 3" in change.diff


def test_new_object_is_a_create() -> None:
    base = cluster(_root(APPS), ks("apps", deployment()))
    head = cluster(_root(APPS), ks("apps", deployment(), configmap("settings")))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert _actions(apps) == [("create", "ConfigMap/web/settings")]
    assert apps.changes[0].diff.startswith("--- before/ConfigMap/web/settings")


@pytest.mark.parametrize(
    ("base_prune", "head_prune", "expected"),
    [
        pytest.param(True, True, "delete", id="prune"),
        pytest.param(False, False, "orphan", id="no-prune"),
        pytest.param(True, False, "delete", id="base-prune-decides-delete"),
        pytest.param(False, True, "orphan", id="base-prune-decides-orphan"),
    ],
)
def test_dropped_object_follows_the_base_prune(
    base_prune: bool, head_prune: bool, expected: str
) -> None:
    base = cluster(_root(APPS), ks("apps", deployment(), configmap("old"), prune=base_prune))
    head = cluster(_root(APPS), ks("apps", deployment(), prune=head_prune))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert _actions(apps) == [(expected, "ConfigMap/web/old")]
    assert apps.prune is base_prune


def test_deleted_object_shows_what_goes_but_orphaned_shows_no_diff() -> None:
    deleted = planning.plan_cluster(
        cluster(ks("apps", configmap("old"))), cluster(ks("apps", prune=True))
    )
    orphaned = planning.plan_cluster(
        cluster(ks("apps", configmap("old"), prune=False)), cluster(ks("apps", prune=False))
    )

    assert "-kind: ConfigMap" in _unit(deleted, APPS).changes[0].diff.splitlines()
    assert _unit(orphaned, APPS).changes[0].diff == ""


@pytest.mark.parametrize(
    ("section", "value"),
    [
        pytest.param("annotations", "disabled", id="annotation"),
        pytest.param("labels", "disabled", id="label"),
        pytest.param("annotations", "Disabled", id="capitalized"),
        pytest.param("labels", "DISABLED", id="upper-case"),
    ],
)
def test_prune_disabled_object_is_orphaned(section: str, value: str) -> None:
    marker = {"kustomize.toolkit.fluxcd.io/prune": value}
    kept = configmap("kept", **{section: marker})  # type: ignore[arg-type]
    base = cluster(ks("apps", kept, configmap("gone")))
    head = cluster(ks("apps"))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert _actions(apps) == [("delete", "ConfigMap/web/gone"), ("orphan", "ConfigMap/web/kept")]


# Moves.


def test_object_moving_between_units_is_one_move_on_the_receiving_unit() -> None:
    base = cluster(ks("apps", deployment(), configmap("a")), ks("web", configmap("b")))
    head = cluster(ks("apps", configmap("a")), ks("web", configmap("b"), deployment()))

    plan = planning.plan_cluster(base, head)

    assert _unit(plan, APPS).changes == ()
    [move] = _unit(plan, WEB).changes
    assert move.action is Action.MOVE
    assert move.moved_from == APPS
    assert move.diff == ""
    assert move.fields == ()


def test_move_with_a_changed_body_carries_a_diff() -> None:
    base = cluster(ks("apps", deployment(replicas=1)), ks("web"))
    head = cluster(ks("apps"), ks("web", deployment(replicas=2)))

    [move] = _unit(planning.plan_cluster(base, head), WEB).changes

    assert move.action is Action.MOVE
    assert move.fields == ("spec.replicas",)
    assert "+  replicas: 2" in move.diff


def test_move_into_an_added_unit_and_out_of_a_removed_unit() -> None:
    base = cluster(_root(APPS), ks("apps", deployment(), configmap("left")))
    head = cluster(_root(WEB), ks("web", deployment()))

    plan = planning.plan_cluster(base, head)

    web = _unit(plan, WEB)
    apps = _unit(plan, APPS)
    assert web.status is UnitStatus.ADDED
    assert [(c.action, c.moved_from) for c in web.changes] == [(Action.MOVE, APPS)]
    assert apps.status is UnitStatus.REMOVED
    assert _actions(apps) == [("delete", "ConfigMap/web/left")]


# Objects Flux skips, and HelmReleases.


SKIP_MARKERS = [
    pytest.param({"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}, id="reconcile-disabled"),
    pytest.param({"kustomize.toolkit.fluxcd.io/reconcile": "Disabled"}, id="reconcile-any-case"),
    pytest.param({"kustomize.toolkit.fluxcd.io/ssa": "Ignore"}, id="ssa-ignore"),
    pytest.param({"kustomize.toolkit.fluxcd.io/ssa": "ignore"}, id="ssa-ignore-lower"),
]


@pytest.mark.parametrize("marker", SKIP_MARKERS)
def test_objects_flux_skips_are_counted_not_changed(marker: dict[str, str]) -> None:
    base = cluster(
        ks("apps", deployment(replicas=1, annotations=marker), configmap("gone", labels=marker))
    )
    head = cluster(
        ks(
            "apps",
            deployment(replicas=2, annotations=marker),
            configmap("new", annotations=marker),
        )
    )

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.changes == ()
    assert apps.skipped == 3
    assert apps.status is UnitStatus.UNCHANGED


def test_skip_marker_on_the_base_side_alone_still_skips() -> None:
    marker = {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
    base = cluster(ks("apps", deployment(replicas=1, annotations=marker)))
    head = cluster(ks("apps", deployment(replicas=2)))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert (apps.changes, apps.skipped) == ((), 1)


def test_unchanged_marked_objects_are_not_counted() -> None:
    marker = {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
    render = cluster(ks("apps", deployment(annotations=marker)))

    assert _unit(planning.plan_cluster(render, render), APPS).skipped == 0


def test_helm_release_prunes_what_leaves_the_chart_unless_kept() -> None:
    keep = {"helm.sh/resource-policy": "keep"}
    reconcile_off = {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
    base = cluster(
        hr(
            "redis",
            configmap("gone"),
            configmap("kept", annotations=keep),
            configmap("not-flux", annotations=reconcile_off),
        )
    )
    head = cluster(hr("redis"))

    redis = _unit(planning.plan_cluster(base, head), REDIS)

    assert _actions(redis) == [
        ("delete", "ConfigMap/web/gone"),
        ("orphan", "ConfigMap/web/kept"),
        ("delete", "ConfigMap/web/not-flux"),  # kustomize-controller markers mean nothing to helm
    ]
    assert redis.prune is True


def test_removed_helm_release_uninstalls_its_objects() -> None:
    base = cluster(_root(REDIS), hr("redis", deployment("redis")))
    head = cluster(_root())

    plan = planning.plan_cluster(base, head)

    assert _actions(_unit(plan, REDIS)) == [("delete", "Deployment/web/redis")]
    assert _actions(_unit(plan, ROOT)) == [("delete", "HelmRelease/flux-system/redis")]


# Cascade.


def test_nested_kustomizations_are_deleted_with_their_parent() -> None:
    base = cluster(
        _root(APPS),
        ks("apps", flux_object(WEB), configmap("apps-conf")),
        ks("web", deployment(), parent=APPS),
    )
    head = cluster(_root())

    plan = planning.plan_cluster(base, head)

    assert _actions(_unit(plan, ROOT)) == [("delete", "Kustomization/flux-system/apps")]
    assert _unit(plan, APPS).status is UnitStatus.REMOVED
    assert _actions(_unit(plan, APPS)) == [
        ("delete", "ConfigMap/web/apps-conf"),
        ("delete", "Kustomization/flux-system/web"),
    ]
    assert _unit(plan, WEB).status is UnitStatus.REMOVED
    assert _actions(_unit(plan, WEB)) == [("delete", "Deployment/web/api")]
    assert "deleted with its parent Kustomization/flux-system/apps" in (_unit(plan, WEB).note or "")


@pytest.mark.parametrize(
    ("root_prune", "annotations"),
    [
        pytest.param(False, None, id="parent-prune-false"),
        pytest.param(True, {"kustomize.toolkit.fluxcd.io/prune": "disabled"}, id="prune-disabled"),
        pytest.param(
            True, {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}, id="not-reconciled"
        ),
    ],
)
def test_child_left_running_by_its_parent_keeps_its_objects(
    root_prune: bool, annotations: dict[str, str] | None
) -> None:
    base = cluster(
        _root(APPS, prune=root_prune, annotations=annotations),
        ks("apps", flux_object(WEB), deployment("api")),
        ks("web", deployment("front"), parent=APPS),
    )
    head = cluster(_root(prune=root_prune))

    plan = planning.plan_cluster(base, head)

    apps, web = _unit(plan, APPS), _unit(plan, WEB)
    assert (apps.status, web.status) == (UnitStatus.REMOVED, UnitStatus.REMOVED)
    assert _all_actions(plan) <= {"orphan"}
    assert _actions(apps) == [
        ("orphan", "Deployment/web/api"),
        ("orphan", "Kustomization/flux-system/web"),
    ]
    assert _actions(web) == [("orphan", "Deployment/web/front")]
    assert "keeps reconciling its source" in (apps.note or "")


@pytest.mark.parametrize(
    ("policy", "prune", "expected", "why"),
    [
        pytest.param("MirrorPrune", True, "delete", "it has prune: true", id="mirror-prune-true"),
        pytest.param(
            "MirrorPrune", False, "orphan", "it has prune: false", id="mirror-prune-false"
        ),
        pytest.param("Delete", False, "delete", "its deletionPolicy is Delete", id="delete"),
        pytest.param(
            "WaitForTermination",
            False,
            "delete",
            "its deletionPolicy is WaitForTermination",
            id="wait-for-termination",
        ),
        pytest.param("Orphan", True, "orphan", "its deletionPolicy is Orphan", id="orphan"),
    ],
)
def test_deletion_policy_of_a_removed_kustomization(
    policy: str, prune: bool, expected: str, why: str
) -> None:
    base = cluster(_root(APPS), ks("apps", deployment(), prune=prune, deletion_policy=policy))
    head = cluster(_root())

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.status is UnitStatus.REMOVED
    assert _actions(apps) == [(expected, "Deployment/web/api")]
    outcome = "deleted" if expected == "delete" else "left in place"
    assert apps.note == (
        "Its Flux object is deleted (Kustomization/flux-system/flux-system prunes its Flux"
        f" object) and {why}, so its objects are {outcome}."
    )


def test_deletion_policy_of_a_removed_parent_decides_for_its_children() -> None:
    base = cluster(
        _root(APPS),
        ks("apps", flux_object(WEB), deletion_policy="Orphan"),
        ks("web", deployment(), parent=APPS),
    )
    head = cluster(_root())

    plan = planning.plan_cluster(base, head)

    assert _actions(_unit(plan, APPS)) == [("orphan", "Kustomization/flux-system/web")]
    assert _actions(_unit(plan, WEB)) == [("orphan", "Deployment/web/api")]


def test_removed_suspended_unit_deletes_nothing() -> None:
    base = cluster(_root(APPS), ks("apps", deployment(), suspend=True, deletion_policy="Delete"))
    head = cluster(_root())

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert _actions(apps) == [("orphan", "Deployment/web/api")]
    assert apps.suspended
    assert "suspended" in (apps.note or "")


def test_removed_unit_without_a_parent_is_left_running() -> None:
    base = cluster(ks("apps", deployment(), parent=None))
    head = cluster()

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.status is UnitStatus.REMOVED
    assert _actions(apps) == [("orphan", "Deployment/web/api")]


def test_self_managed_root_that_drops_itself_prunes_everything() -> None:
    root = RenderedUnit(
        unit=ROOT,
        prune=True,
        objects={m.ref: m for m in (flux_object(ROOT), configmap("cluster-conf"))},
        parent=ROOT,
    )
    base = cluster(root)
    head = cluster(ks("apps", deployment(), parent=None))

    plan = planning.plan_cluster(base, head)

    root_plan = _unit(plan, ROOT)
    assert root_plan.status is UnitStatus.REMOVED
    assert _actions(root_plan) == [
        ("delete", "ConfigMap/web/cluster-conf"),
        ("delete", "Kustomization/flux-system/flux-system"),
    ]


def test_removed_cluster_leaves_everything_in_place() -> None:
    base = cluster(_root(APPS), ks("apps", deployment()))

    plan = planning.plan_cluster(base, None)

    assert plan.path == CLUSTER
    assert {u.status for u in plan.units} == {UnitStatus.REMOVED}
    assert _all_actions(plan) == {"orphan"}


def test_new_cluster_adds_everything() -> None:
    head = cluster(_root(APPS), ks("apps", deployment()))

    plan = planning.plan_cluster(None, head)

    assert {u.status for u in plan.units} == {UnitStatus.ADDED}
    assert _all_actions(plan) == {"create"}


def test_plan_cluster_needs_a_side() -> None:
    with pytest.raises(ValueError, match="base or a head"):
        planning.plan_cluster(None, None)


# Failing closed.


def test_failed_head_render_withholds_its_objects_and_its_childrens() -> None:
    base = cluster(
        _root(APPS),
        ks("apps", flux_object(WEB), configmap("a")),
        ks("web", deployment(), parent=APPS),
    )
    head = cluster(
        _root(APPS),
        ks("apps", error="kustomize build failed: missing file", failure=Failure.BUILD),
    )

    plan = planning.plan_cluster(base, head)

    apps, web = _unit(plan, APPS), _unit(plan, WEB)
    assert apps.status is UnitStatus.FAILED
    assert apps.error == "at head: kustomize build failed: missing file"
    assert apps.reason is Failure.BUILD
    assert web.reason is Failure.WITHHELD
    assert apps.changes == ()
    assert web.status is UnitStatus.FAILED
    assert web.error == "unknown because its parent Kustomization/flux-system/apps failed"
    assert "delete" not in _all_actions(plan)
    assert "orphan" not in _all_actions(plan)


def test_parent_failed_at_base_and_removed_at_head_withholds_its_descendants() -> None:
    base = cluster(
        _root(APPS),
        ks("apps", error="kustomize build failed: missing file"),
        ks("web", deployment(), parent=APPS),
        ks("db", configmap("x"), parent=WEB),
    )
    head = cluster(_root())

    plan = planning.plan_cluster(base, head)

    apps, web, db = _unit(plan, APPS), _unit(plan, WEB), _unit(plan, DB)
    assert apps.status is UnitStatus.FAILED
    assert apps.error == "at base: kustomize build failed: missing file"
    assert web.status is UnitStatus.FAILED
    assert web.error == "unknown because its parent Kustomization/flux-system/apps failed"
    assert db.status is UnitStatus.FAILED
    assert db.error == web.error
    assert apps.changes == web.changes == db.changes == ()
    # The removal itself is certain: the root prunes the Flux object it no longer renders.
    assert _actions(_unit(plan, ROOT)) == [("delete", "Kustomization/flux-system/apps")]


def test_failed_root_at_head_never_becomes_a_mass_delete() -> None:
    base = cluster(_root(APPS, WEB), ks("apps", deployment()), ks("web", configmap("x")))
    head = cluster(ks("flux-system", error="render timed out"))

    plan = planning.plan_cluster(base, head)

    assert {u.status for u in plan.units} == {UnitStatus.FAILED}
    assert _all_actions(plan) == set()


def test_failed_base_render_withholds_creates() -> None:
    base = cluster(ks("apps", error="at base it was broken"))
    head = cluster(ks("apps", deployment(), configmap("x")))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.status is UnitStatus.FAILED
    assert apps.error == "at base: at base it was broken"
    assert apps.changes == ()


def test_failed_on_both_sides_reports_both_errors() -> None:
    base = cluster(ks("apps", error="one"))
    head = cluster(ks("apps", error="two"))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.error == "at base: one; at head: two"


def test_added_unit_under_a_parent_failed_at_base_is_unproven() -> None:
    base = cluster(_root(), ks("apps", error="broken"))
    head = cluster(_root(), ks("apps", flux_object(WEB)), ks("web", deployment(), parent=APPS))

    web = _unit(planning.plan_cluster(base, head), WEB)

    assert web.status is UnitStatus.FAILED
    assert web.changes == ()


@pytest.mark.parametrize(
    ("base_errors", "head_errors", "unit", "side"),
    [
        pytest.param((), ("dependsOn cycle",), APPS, "head", id="removal-unproven"),
        pytest.param(("discovery failed",), (), WEB, "base", id="addition-unproven"),
    ],
)
def test_cluster_errors_make_one_sided_units_unproven(
    base_errors: tuple[str, ...], head_errors: tuple[str, ...], unit: UnitRef, side: str
) -> None:
    base = cluster(ks("apps", deployment()), errors=base_errors)
    head = cluster(ks("web", configmap("x")), errors=head_errors)

    plan = planning.plan_cluster(base, head)

    failed = _unit(plan, unit)
    assert failed.status is UnitStatus.FAILED
    assert f"errors at {side}" in (failed.error or "")
    assert f"at {side}: {(base_errors + head_errors)[0]}" in plan.errors


def test_parent_cycle_fails_closed() -> None:
    base = cluster(
        ks("apps", flux_object(WEB), deployment(), parent=WEB),
        ks("web", flux_object(APPS), parent=APPS),
    )
    head = cluster()

    plan = planning.plan_cluster(base, head)

    assert {u.status for u in plan.units} == {UnitStatus.FAILED}
    assert all("cycle" in (u.error or "") for u in plan.units)


def test_flux_object_still_rendered_but_unit_missing_fails_closed() -> None:
    base = cluster(_root(APPS), ks("apps", deployment()))
    head = cluster(_root(APPS))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.status is UnitStatus.FAILED
    assert "still rendered at head" in (apps.error or "")


def test_parent_missing_from_both_renders_fails_closed() -> None:
    base = cluster(ks("web", deployment(), parent=APPS))

    web = _unit(planning.plan_cluster(base, cluster()), WEB)

    assert web.status is UnitStatus.FAILED
    assert "was not rendered" in (web.error or "")


# Duplicates, suspension, noise.


@pytest.mark.parametrize("side", ["base", "head"])
def test_object_rendered_by_two_units_is_a_cluster_error(side: str) -> None:
    duplicated = cluster(ks("apps", configmap("shared")), ks("db", configmap("shared")))
    single = cluster(ks("apps", configmap("shared")), ks("db"))
    base, head = (duplicated, single) if side == "base" else (single, duplicated)

    plan = planning.plan_cluster(base, head)

    assert plan.errors == (
        f"ConfigMap/web/shared is rendered by more than one unit at {side}: "
        "Kustomization/flux-system/apps, Kustomization/flux-system/db",
    )


def test_suspended_unit_still_shows_its_changes_flagged() -> None:
    base = cluster(ks("apps", deployment(replicas=1), suspend=True))
    head = cluster(ks("apps", deployment(replicas=2), suspend=True))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.suspended
    assert _actions(apps) == [("update", "Deployment/web/api")]


def test_noise_only_object_is_counted_not_updated() -> None:
    base = cluster(ks("apps", deployment(labels={"helm.sh/chart": "api-1"}), configmap("a")))
    head = cluster(
        ks(
            "apps",
            deployment(labels={"helm.sh/chart": "api-2"}),
            configmap("a", data={"key": "other"}, labels={"chart": "x"}),
        )
    )

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert _actions(apps) == [("update", "ConfigMap/web/a")]
    assert apps.noise_only == 1
    assert apps.changes[0].suppressed == {"helm-chart-labels": 1}
    assert apps.suppressed == {"helm-chart-labels": 3}


def test_unit_with_only_noise_is_unchanged_but_keeps_its_counts() -> None:
    base = cluster(ks("apps", deployment(template_annotations={"checksum/config": "1"})))
    head = cluster(ks("apps", deployment(template_annotations={"checksum/config": "2"})))

    apps = _unit(planning.plan_cluster(base, head), APPS)

    assert apps.status is UnitStatus.UNCHANGED
    assert apps.noise_only == 1
    assert apps.suppressed == {"checksum-annotations": 2}


def test_secret_values_stay_masked_through_planning() -> None:
    masker = Masker()
    base = cluster(ks("apps", secret(masker, "db", {"password": "canary-base-4d1f"})))
    head = cluster(ks("apps", secret(masker, "db", {"password": "canary-head-9e2c"})))

    [change] = _unit(planning.plan_cluster(base, head), APPS).changes

    assert change.fields == ("data.password",)
    assert "canary" not in change.diff
    assert "tidegate:masked" not in change.diff


# Ordering and previews.


def _shuffled(render: ClusterRender, seed: int) -> ClusterRender:
    shuffler = random.Random(seed)  # noqa: S311 - an input order, not a secret
    units = list(render.units.values())
    shuffler.shuffle(units)
    reordered = []
    for unit in units:
        items = list((unit.objects or {}).items())
        shuffler.shuffle(items)
        reordered.append(
            RenderedUnit(unit=unit.unit, prune=unit.prune, objects=dict(items), parent=unit.parent)
        )
    return cluster(*reordered)


def test_output_order_does_not_depend_on_input_order() -> None:
    base = cluster(
        _root(APPS, WEB, DB),
        ks("web", configmap("z"), configmap("a"), deployment("b")),
        ks("apps", deployment()),
        ks("db", configmap("q")),
    )
    head = cluster(
        _root(APPS, WEB),
        ks("web", configmap("y"), deployment("b", replicas=5), configmap("c")),
        ks("apps", deployment(), configmap("q")),
    )

    plans = {
        repr(planning.plan_cluster(_shuffled(base, seed), _shuffled(head, seed + 1)))
        for seed in range(5)
    }

    assert len(plans) == 1
    plan = planning.plan_cluster(base, head)
    assert [u.unit for u in plan.units] == sorted(u.unit for u in plan.units)
    for unit in plan.units:
        assert [c.ref for c in unit.changes] == sorted(c.ref for c in unit.changes)


def test_plan_preview_combines_clusters_by_path() -> None:
    staging = "clusters/staging"
    base = {CLUSTER: cluster(ks("apps", deployment(replicas=1)))}
    head = {
        CLUSTER: cluster(ks("apps", deployment(replicas=2))),
        staging: cluster(ks("apps", deployment(), parent=None), path=staging),
    }

    preview = planning.plan_preview("base-sha", "head-sha", base, head)

    assert (preview.base, preview.head) == ("base-sha", "head-sha")
    assert [c.path for c in preview.clusters] == [CLUSTER, staging]
    assert preview.summary == {
        "create": 1,
        "update": 1,
        "delete": 0,
        "orphan": 0,
        "move": 0,
        "unknown": 0,
        "failed": 0,
        "unavailable": 0,
    }


def test_changes_are_change_objects_of_the_shared_contract() -> None:
    base = cluster(ks("apps", deployment(replicas=1)))
    head = cluster(ks("apps", deployment(replicas=2)))

    [change] = _unit(planning.plan_cluster(base, head), APPS).changes

    assert type(change) is Change
    assert isinstance(_unit(planning.plan_cluster(base, head), APPS), UnitPlan)


def test_object_arriving_while_a_unit_failed_at_base_has_an_unknown_fate() -> None:
    # The object moves from apps into web, but apps fails at base: it is not known to be new.
    base = cluster(_root(APPS, WEB), ks("apps", error="broken"), ks("web", configmap("kept")))
    head = cluster(
        _root(APPS, WEB), ks("apps", configmap("other")), ks("web", configmap("kept"), deployment())
    )

    web = _unit(planning.plan_cluster(base, head), WEB)

    [change] = web.changes
    assert change.action is Action.UNKNOWN
    assert change.note is not None
    assert "Kustomization/flux-system/apps failed at base" in change.note


def test_object_leaving_while_a_unit_failed_at_head_has_an_unknown_fate() -> None:
    base = cluster(_root(APPS, WEB), ks("apps", configmap("x")), ks("web", deployment()))
    head = cluster(_root(APPS, WEB), ks("apps", error="broken"), ks("web"))

    plan = planning.plan_cluster(base, head)

    [change] = _unit(plan, WEB).changes
    assert change.action is Action.UNKNOWN
    assert change.note is not None
    assert "Kustomization/flux-system/apps failed at head" in change.note
    assert "delete" not in _all_actions(plan)


def test_without_failures_new_and_removed_objects_are_creates_and_deletes() -> None:
    base = cluster(_root(APPS, WEB), ks("apps", configmap("x")), ks("web", deployment()))
    head = cluster(_root(APPS, WEB), ks("apps", configmap("x")), ks("web", configmap("y")))

    web = _unit(planning.plan_cluster(base, head), WEB)

    assert sorted(c.action.value for c in web.changes) == ["create", "delete"]
    assert all(c.note is None for c in web.changes)


def test_changes_carry_the_masked_objects_they_compare() -> None:
    kept_before, kept_after = configmap("kept", data={"a": "1"}), configmap("kept", data={"a": "2"})
    gone, new, moving_before, moving_after = (
        configmap("gone"),
        configmap("new"),
        configmap("moving"),
        configmap("moving"),
    )
    left = configmap("left", annotations={"kustomize.toolkit.fluxcd.io/prune": "disabled"})
    base = cluster(_root(APPS, WEB), ks("apps", kept_before, gone, left, moving_before), ks("web"))
    head = cluster(_root(APPS, WEB), ks("apps", kept_after, new), ks("web", moving_after))
    plan = planning.plan_cluster(base, head)
    sides = {c.ref.name: (c.action, c.before, c.after) for u in plan.units for c in u.changes}
    assert sides == {
        "kept": (Action.UPDATE, kept_before, kept_after),
        "new": (Action.CREATE, None, new),
        "gone": (Action.DELETE, gone, None),
        "left": (Action.ORPHAN, left, None),
        "moving": (Action.MOVE, moving_before, moving_after),
    }
    assert _unit(plan, APPS).changes[0].source is None


def test_unit_plans_carry_the_owner_graph_facts() -> None:
    source = SourceRef("GitRepository", "flux-system", "flux-system")
    web = replace(ks("web"), depends_on=(APPS,), source=source, file="clusters/p/web.yaml")
    plan = planning.plan_cluster(
        cluster(_root(APPS, WEB), ks("apps"), web), cluster(_root(APPS, WEB), ks("apps"), web)
    )
    unit = _unit(plan, WEB)
    assert (unit.depends_on, unit.source, unit.file) == ((APPS,), source, "clusters/p/web.yaml")
