"""Server-side apply of a CRD, one of its custom resources, a Namespace and a Deployment.

Objects are applied with the Python client as the `tidegate` field manager and read back with
both the pinned kubectl and the Python client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import FIELD_MANAGER, apply, eventually, kubectl_get, unique_name

pytestmark = pytest.mark.cluster

GROUP = "test.tidegate.dev"


def _crd() -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"size": {"type": "integer"}, "colour": {"type": "string"}},
            }
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": "Widget",
                "plural": "widgets",
                "singular": "widget",
                "listKind": "WidgetList",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _deployment(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }


def _applied_by_us(live: dict[str, Any]) -> bool:
    entries = live["metadata"].get("managedFields", [])
    return any(e["manager"] == FIELD_MANAGER and e["operation"] == "Apply" for e in entries)


def _established(dynamic_client: Any, name: str) -> bool:
    resource = dynamic_client.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    status = dynamic_client.get(resource, name=name).to_dict().get("status") or {}
    conditions = status.get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def test_server_side_apply_round_trips_through_kubectl_and_the_python_client(
    dynamic_client: Any, admin_kubeconfig: Path
) -> None:
    crd = _crd()
    namespace = unique_name("apply")
    widget = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": "blue", "namespace": namespace},
        "spec": {"size": 3, "colour": "blue"},
    }
    deployment = _deployment(namespace, "web", 1)

    apply(dynamic_client, crd)
    eventually(lambda: _established(dynamic_client, crd["metadata"]["name"]), "CRD Established")
    # With no field set besides its name, an applied object would record no managed fields.
    labels = {"tidegate.dev/test": "apply"}
    ns_body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": labels},
    }
    apply(dynamic_client, ns_body)
    apply(dynamic_client, widget)
    apply(dynamic_client, deployment)

    read_back = {
        "crd": kubectl_get(admin_kubeconfig, "crd", crd["metadata"]["name"]),
        "namespace": kubectl_get(admin_kubeconfig, "namespace", namespace),
        "widget": kubectl_get(admin_kubeconfig, "-n", namespace, f"widgets.{GROUP}", "blue"),
        "deployment": kubectl_get(admin_kubeconfig, "-n", namespace, "deployment", "web"),
    }
    assert read_back["widget"]["spec"] == {"size": 3, "colour": "blue"}
    assert read_back["deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.invalid/app:1"
    )
    assert all(_applied_by_us(live) for live in read_back.values()), read_back

    for body in (crd, ns_body, widget, deployment):
        resource = dynamic_client.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        live = dynamic_client.get(
            resource, name=body["metadata"]["name"], namespace=body["metadata"].get("namespace")
        ).to_dict()
        assert _applied_by_us(live), live["metadata"]
    assert live["spec"]["replicas"] == 1


def test_reapplying_with_a_field_removed_gives_it_up(dynamic_client: Any, namespace: str) -> None:
    first = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": {"keep": "1", "drop": "2"},
    }
    apply(dynamic_client, first)
    second = {**first, "data": {"keep": "1"}}

    live = apply(dynamic_client, second).to_dict()

    # Apply semantics, not a merge patch: a field the manager no longer sets is removed.
    assert live["data"] == {"keep": "1"}
