"""suspend, resume, `reconcile.fluxcd.io/requestedAt`, dependsOn cycles and deletion, as Flux.

Driven through the same merge patches the `flux` CLI sends, on the real control plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.kube import kubectl, status_of
from tests.reconcile.conftest import Flux

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"


def _app(flux: Flux, colour: str) -> dict[str, str | None]:
    return {
        "app/settings.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: settings, namespace: {flux.apps_namespace}}}
            data: {{colour: {colour}}}
        """
    }


def _patch(flux: Flux, name: str, body: dict[str, Any]) -> None:
    k8s.CustomObjectsApi(flux.kube_client).patch_namespaced_custom_object(
        GROUP, VERSION, flux.namespace, PLURAL, name, body
    )


def _colour(flux: Flux) -> str:
    found = k8s.CoreV1Api(flux.kube_client).read_namespaced_config_map(
        "settings", flux.apps_namespace
    )
    return str(found.data["colour"])


def test_suspend_resume_and_requested_at_behave_as_flux(flux: Flux) -> None:
    flux.create_apps_namespace()
    first = flux.commit(_app(flux, "blue"))
    flux.kustomization("app", path="./app")
    assert flux.driver.reconcile(flux.namespace, "app").ready

    _patch(flux, "app", {"spec": {"suspend": True}})
    flux.commit(_app(flux, "green"))
    _patch(flux, "app", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "t1"}}})
    suspended = flux.driver.reconcile(flux.namespace, "app")

    assert suspended.requeue_after is None
    assert _colour(flux) == "blue"
    status = flux.get("app")["status"]
    assert status["lastAppliedRevision"] == first
    assert status["lastHandledReconcileAt"] == "t1"
    assert flux.condition("app")["message"] == f"Applied revision: {first}"

    _patch(flux, "app", {"spec": {"suspend": False}})
    resumed = flux.driver.reconcile(flux.namespace, "app")

    assert resumed.ready
    assert _colour(flux) == "green"
    obj = flux.get("app")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert flux.condition("app")["observedGeneration"] == obj["metadata"]["generation"]

    _patch(flux, "app", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "t2"}}})
    flux.driver.reconcile(flux.namespace, "app")

    assert flux.get("app")["status"]["lastHandledReconcileAt"] == "t2"


def test_a_dependency_cycle_is_reported_as_stalled_not_hung(
    flux: Flux, admin_kubeconfig: Path
) -> None:
    flux.create_apps_namespace()
    flux.commit(_app(flux, "blue"))
    flux.kustomization("a", path="./app", dependsOn=[{"name": "b"}])
    flux.kustomization("b", path="./app", dependsOn=[{"name": "a"}])

    first = flux.driver.reconcile(flux.namespace, "a")
    second = flux.driver.reconcile(flux.namespace, "b")

    ns = flux.namespace
    assert first.message == f"dependency cycle: {ns}/a -> {ns}/b -> {ns}/a"
    assert second.message == f"dependency cycle: {ns}/b -> {ns}/a -> {ns}/b"
    assert first.requeue_after is None
    stalled = flux.condition("a", "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "DependencyNotReady")
    ready = flux.condition("a")
    assert (ready["status"], ready["reason"]) == ("False", "DependencyNotReady")
    waited = kubectl(
        admin_kubeconfig,
        "wait",
        "--for=condition=Stalled",
        "ks/a",
        "ks/b",
        "-n",
        ns,
        "--timeout=300s",
    )
    assert waited.count("condition met") == 2
    missing = status_of(
        lambda: k8s.CoreV1Api(flux.kube_client).read_namespaced_config_map(
            "settings", flux.apps_namespace
        )
    )
    assert missing == 404


def test_deleting_a_kustomization_runs_its_deletion_policy(flux: Flux) -> None:
    flux.create_apps_namespace()
    flux.commit(_app(flux, "blue"))
    flux.kustomization("app", path="./app", deletionPolicy="Delete", prune=False)
    flux.driver.reconcile(flux.namespace, "app")
    core = k8s.CoreV1Api(flux.kube_client)
    assert core.read_namespaced_config_map("settings", flux.apps_namespace)

    k8s.CustomObjectsApi(flux.kube_client).delete_namespaced_custom_object(
        GROUP, VERSION, flux.namespace, PLURAL, "app"
    )
    outcome = flux.driver.reconcile(flux.namespace, "app")

    assert [str(change) for change in outcome.changes] == [
        f"ConfigMap/{flux.apps_namespace}/settings deleted"
    ]
    gone = status_of(lambda: core.read_namespaced_config_map("settings", flux.apps_namespace))
    assert gone == 404
    kustomization = status_of(
        lambda: k8s.CustomObjectsApi(flux.kube_client).get_namespaced_custom_object(
            GROUP, VERSION, flux.namespace, PLURAL, "app"
        )
    )
    assert kustomization == 404
