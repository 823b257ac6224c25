"""Controllers at work: Deployments become Available, namespaces finish deleting, owners cascade.

These need kube-controller-manager, kube-scheduler and kwok's fake Nodes besides the apiserver.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.kube import apply, eventually, status_of, unique_name

pytestmark = pytest.mark.cluster


def _deployment(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }


def _available(kube_client: Any, namespace: str, name: str) -> Any:
    deployment = k8s.AppsV1Api(kube_client).read_namespaced_deployment(name, namespace)
    conditions = deployment.status.conditions or []
    available = any(c.type == "Available" and c.status == "True" for c in conditions)
    return deployment if available and deployment.status.available_replicas == 2 else None


def test_a_deployment_with_two_replicas_becomes_available(
    kube_client: Any, dynamic_client: Any, namespace: str
) -> None:
    apply(dynamic_client, _deployment(namespace, "web", 2))

    deployment = eventually(lambda: _available(kube_client, namespace, "web"), "Available")

    assert deployment.status.ready_replicas == 2
    pods = k8s.CoreV1Api(kube_client).list_namespaced_pod(namespace, label_selector="app=web")
    assert len(pods.items) == 2
    assert all(pod.spec.node_name.startswith("kwok-node-") for pod in pods.items)
    assert all(pod.status.phase == "Running" and pod.status.pod_ip for pod in pods.items)


def test_deleting_a_namespace_finishes(kube_client: Any, dynamic_client: Any) -> None:
    core = k8s.CoreV1Api(kube_client)
    name = unique_name("gone")
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "c"}, "data": {"a": "b"}})
    apply(dynamic_client, _deployment(name, "web", 1))

    core.delete_namespace(name)

    eventually(lambda: status_of(lambda: core.read_namespace(name)) == 404, "namespace removal")


def test_deleting_an_owner_collects_its_dependents(kube_client: Any, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [reference]}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}})

    core.delete_namespaced_config_map("owner", namespace)

    eventually(
        lambda: status_of(lambda: core.read_namespaced_config_map("dependent", namespace)) == 404,
        "garbage collection of the dependent",
    )
    assert status_of(lambda: core.read_namespaced_config_map("bystander", namespace)) == 200
