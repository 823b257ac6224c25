"""Planning against the real control plane: live inventory before, dry-run after, same Changes."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from core.changes import Action as PlanAction
from core.changes import UnitStatus
from core.cleartext import Clear
from core.cluster.live import LiveCluster
from core.inventory import Inventory
from core.model import Manifest, UnitKind, UnitRef
from core.plan.live import plan_live
from core.secrets import Masker
from core.units import ClusterRender, RenderedUnit
from reconciler.apply import Owner, apply_objects
from tests.cluster.kube import eventually

pytestmark = pytest.mark.cluster

UNIT = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "apps")
OWNER = Owner("apps", "flux-system")
LIVE_VALUE = "live-password-value"
NEW_VALUE = "new-password-value"


def _labels() -> dict[str, str]:
    return dict(OWNER.labels)


def _config_map(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "labels": _labels()}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def _secret(namespace: str, value: str) -> dict[str, Any]:
    meta = {"name": "creds", "namespace": namespace, "labels": _labels()}
    encoded = base64.b64encode(value.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": {"password": encoded}}


def _deployment(namespace: str) -> dict[str, Any]:
    labels = {"app": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, "labels": _labels()},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.test/app:1"}]},
            },
        },
    }


def _head(masker: Masker, *bodies: dict[str, Any]) -> ClusterRender:
    manifests = [Manifest(b["apiVersion"], masker.mask_object(b)) for b in bodies]
    unit = RenderedUnit(UNIT, prune=True, objects={m.ref: m for m in manifests})
    return ClusterRender("clusters/test", {UNIT: unit})


def test_a_live_plan_speaks_the_same_change_vocabulary(kube_client: Any, namespace: str) -> None:
    port = LiveCluster(kube_client)
    masker = Masker(b"k" * 32)
    same = _secret(namespace, LIVE_VALUE)
    same["metadata"]["name"] = "same"
    old = [
        _deployment(namespace),
        _config_map(namespace, "settings", {"colour": "blue"}),
        _config_map(namespace, "old", {"a": "1"}),
        _secret(namespace, LIVE_VALUE),
        same,
    ]
    inventory = apply_objects(port, [Clear(b, None) for b in old], owner=OWNER).inventory()
    # The Deployment controller annotates the Deployment once after creation; plan after that,
    # so the read (before) and the dry run (after) see the same object.
    eventually(
        lambda: (
            port.get("apps/v1", "Deployment", namespace, "web")["metadata"].get("annotations") or {}
        ).get("deployment.kubernetes.io/revision"),
        "the Deployment's revision annotation",
    )
    head = _head(
        masker,
        _deployment(namespace),
        _config_map(namespace, "settings", {"colour": "green"}),
        _config_map(namespace, "new", {"b": "2"}),
        _secret(namespace, NEW_VALUE),
        same,
    )

    plan = plan_live(port, head, {UNIT: inventory}, masker)

    [unit] = plan.units
    assert unit.status is UnitStatus.RENDERED
    changes = {str(c.ref): c for c in unit.changes}
    assert {name: c.action for name, c in changes.items()} == {
        f"ConfigMap/{namespace}/settings": PlanAction.UPDATE,
        f"ConfigMap/{namespace}/new": PlanAction.CREATE,
        f"ConfigMap/{namespace}/old": PlanAction.DELETE,
        f"Secret/{namespace}/creds": PlanAction.UPDATE,
    }
    assert changes[f"ConfigMap/{namespace}/settings"].fields == ("data.colour",)
    assert changes[f"Secret/{namespace}/creds"].fields == ("data.password",)
    everything = repr(plan) + "".join(c.diff for c in unit.changes)
    for value in (LIVE_VALUE, NEW_VALUE):
        assert value not in everything
        assert base64.b64encode(value.encode()).decode() not in everything


def test_a_kustomization_without_inventory_is_added_and_a_rejected_object_fails_it(
    kube_client: Any, namespace: str
) -> None:
    port = LiveCluster(kube_client)
    masker = Masker(b"k" * 32)
    fresh = _head(masker, _config_map(namespace, "first", {"a": "1"}))

    added = plan_live(port, fresh, {}, masker)

    assert added.units[0].status is UnitStatus.ADDED
    assert [c.action for c in added.units[0].changes] == [PlanAction.CREATE]

    bad = _deployment(namespace)
    bad["spec"]["replicas"] = -1
    failed = plan_live(port, _head(masker, bad), {UNIT: Inventory()}, masker)

    assert failed.units[0].status is UnitStatus.FAILED
    assert failed.units[0].error is not None
    assert failed.units[0].error.startswith(
        f"at head: Deployment/{namespace}/web dry-run failed (Invalid): "
    )
    assert "spec.replicas" in failed.units[0].error
    assert failed.units[0].changes == ()


def test_objects_in_a_namespace_the_unit_creates_are_creates(kube_client: Any) -> None:
    port = LiveCluster(kube_client)
    masker = Masker(b"k" * 32)
    namespace = "not-yet-there"
    head = _head(
        masker,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        _config_map(namespace, "inside", {"a": "1"}),
    )

    plan = plan_live(port, head, {UNIT: Inventory()}, masker)

    assert {str(c.ref): c.action for c in plan.units[0].changes} == {
        f"Namespace/{namespace}": PlanAction.CREATE,
        f"ConfigMap/{namespace}/inside": PlanAction.CREATE,
    }
