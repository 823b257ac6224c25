"""The input contract: admission shape, GitOps context and owner graph, built from a real plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.changes import Action, UnitStatus
from core.model import UnitKind, UnitRef
from policies.config import parse_config
from policies.input import Operation, build_input
from tests.policies.cases import case

APPS = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "apps")
DATA = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "data")
ROOT = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "flux-system")

SIDES = """
case: one of each action
cluster: clusters/production
base:
- unit: Kustomization/flux-system/flux-system
- unit: Kustomization/flux-system/apps
  parent: Kustomization/flux-system/flux-system
  path: ./apps
  objects:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: kept, namespace: web}, data: {a: "1"}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: gone, namespace: web}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: moving, namespace: web}}
  - apiVersion: v1
    kind: Secret
    metadata: {name: creds, namespace: web}
    stringData: {password: hunter2-canary}
- unit: Kustomization/flux-system/data
  parent: Kustomization/flux-system/flux-system
  prune: false
  objects:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: left, namespace: db}}
head:
- unit: Kustomization/flux-system/flux-system
- unit: Kustomization/flux-system/apps
  parent: Kustomization/flux-system/flux-system
  path: ./apps
  objects:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: kept, namespace: web}, data: {a: "2"}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: new, namespace: web}}
  - apiVersion: v1
    kind: Secret
    metadata: {name: creds, namespace: web}
    stringData: {password: hunter3-canary}
- unit: Kustomization/flux-system/data
  parent: Kustomization/flux-system/flux-system
  prune: false
  dependsOn: [Kustomization/flux-system/apps]
  objects:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: moving, namespace: web}}
"""


def _changes(tmp_path: Path) -> dict[str, object]:
    loaded = case(tmp_path, SIDES)
    policy_input = build_input(loaded.preview)
    return {change.ref.name: change for change in policy_input.changes}


def test_actions_map_to_admission_operations(tmp_path: Path) -> None:
    changes = _changes(tmp_path)
    got = {name: (c.action, c.operation) for name, c in changes.items()}  # type: ignore[attr-defined]
    assert got == {
        "kept": (Action.UPDATE, Operation.UPDATE),
        "new": (Action.CREATE, Operation.CREATE),
        "gone": (Action.DELETE, Operation.DELETE),
        "moving": (Action.MOVE, Operation.UPDATE),
        "left": (Action.ORPHAN, None),
        "creds": (Action.UPDATE, Operation.UPDATE),
    }


def test_changes_carry_masked_bodies_on_the_right_sides(tmp_path: Path) -> None:
    policy_input = build_input(case(tmp_path, SIDES).preview)
    by_name = {c.ref.name: c for c in policy_input.changes}
    kept = by_name["kept"]
    assert kept.old_object is not None
    assert kept.old_object["data"] == {"a": "1"}
    assert kept.object is not None
    assert kept.object["data"] == {"a": "2"}
    assert by_name["new"].old_object is None
    assert by_name["new"].object is not None
    assert by_name["gone"].object is None
    assert by_name["gone"].old_object is not None
    assert by_name["left"].object is None
    assert by_name["left"].old_object is not None
    moving = by_name["moving"]
    assert moving.object is not None
    assert moving.old_object is not None
    assert "canary" not in repr([c.admission() for c in policy_input.changes])


def test_gitops_context_names_owner_old_owner_and_prune(tmp_path: Path) -> None:
    by_name = {c.ref.name: c for c in build_input(case(tmp_path, SIDES).preview).changes}
    moving = by_name["moving"]
    assert (moving.unit, moving.old_unit, moving.moved_from) == (DATA, APPS, APPS)
    assert (by_name["new"].unit, by_name["new"].old_unit) == (APPS, None)
    assert by_name["gone"].pruned
    assert by_name["gone"].prune
    assert by_name["left"].orphaned
    assert not by_name["left"].prune
    assert by_name["gone"].file == "case.yaml"
    assert by_name["gone"].cluster == "clusters/production"
    context = moving.admission()
    assert context["request"]["operation"] == "UPDATE"
    assert context["request"]["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert context["tidegate"]["movedFrom"] == "Kustomization/flux-system/apps"
    assert context["tidegate"]["action"] == "move"


def test_owner_graph_has_units_edges_and_paths(tmp_path: Path) -> None:
    graph = build_input(case(tmp_path, SIDES).preview).owners["clusters/production"]
    assert set(graph.units) == {ROOT, APPS, DATA}
    assert graph.units[DATA].depends_on == (APPS,)
    assert graph.units[APPS].path == "./apps"
    assert graph.units[APPS].status is UnitStatus.RENDERED
    assert set(graph.children(ROOT)) == {APPS, DATA}
    assert graph.dependents(APPS) == (DATA,)


def test_profile_and_options_follow_the_configuration(tmp_path: Path) -> None:
    config = parse_config(
        """
policies:
  kubernetesVersion: "1.31"
  rules: {GP025: {maxDeletes: 20}}
  profiles:
  - name: production
    paths: ["clusters/production/**"]
    rules: {GP025: {maxDeletes: 5}}
"""
    )
    policy_input = build_input(
        case(tmp_path, SIDES).preview,
        kube_version=config.kube_version,
        profile_of=config.profile_of,
        options=config.options(),
    )
    change = policy_input.changes[0]
    assert change.profile == "production"
    assert change.kube_version == "1.31"
    assert policy_input.option("GP025", "maxDeletes", 50, profile=change.profile) == 5
    assert policy_input.option("GP025", "maxDeletes", 50) == 20
    assert policy_input.option("GP025", "other", 7, profile="production") == 7


def test_unknown_fates_take_the_graver_operation() -> None:
    from core.changes import Change, ClusterPlan, Preview, UnitPlan
    from core.model import Manifest

    def configmap(name: str) -> Manifest:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        return Manifest("v1", body)

    appears, disappears = configmap("appears"), configmap("disappears")
    unit = UnitPlan(
        unit=APPS,
        status=UnitStatus.RENDERED,
        prune=True,
        changes=(
            Change(Action.UNKNOWN, appears.ref, "v1", after=appears),
            Change(
                Action.UNKNOWN,
                disappears.ref,
                "v1",
                before=disappears,
            ),
        ),
    )
    preview = Preview("a" * 40, "b" * 40, (ClusterPlan("clusters/production", (unit,)),))

    got = {c.ref.name: (c.operation, c.old_unit) for c in build_input(preview).changes}

    assert got == {"appears": (Operation.CREATE, None), "disappears": (Operation.DELETE, APPS)}


def test_the_owner_graph_of_a_plan_is_made_once_per_plan_object(tmp_path: Path) -> None:
    # A warm process hands the same kept plan to every preview that leaves the cluster alone.
    preview = case(tmp_path, SIDES).preview
    (plan,) = preview.clusters
    first = build_input(preview).owners[plan.path]
    again = build_input(preview).owners[plan.path]
    copied = dataclasses.replace(plan, units=tuple(plan.units))  # equal, but another object
    other = build_input(dataclasses.replace(preview, clusters=(copied,))).owners[plan.path]

    assert again is first
    assert other is not first
    assert other.units == first.units
