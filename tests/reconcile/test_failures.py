"""Failures give Flux's reason and a clear message, prune nothing, and leak no Secret value.

Each test first reconciles a good revision (ConfigMaps `alpha` and `beta`), then a bad one that
also drops `beta` from Git: if anything were pruned after the failure, `beta` would go.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from prometheus_client import REGISTRY, generate_latest

from tests.cluster.kube import kubectl, kubectl_json
from tests.reconcile.conftest import Flux

pytestmark = pytest.mark.cluster

CANARY = "canary-0b5e7c41-never-shown"


def _configmap(flux: Flux, name: str, **data: str) -> str:
    items = ", ".join(f"{k}: {v!r}" for k, v in data.items())
    return f"""
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: {name}, namespace: {flux.apps_namespace}}}
        data: {{{items}}}
    """


def _good(flux: Flux, **spec: Any) -> str:
    flux.create_apps_namespace()
    revision = flux.commit(
        {
            "app/alpha.yaml": _configmap(flux, "alpha", colour="blue"),
            "app/beta.yaml": _configmap(flux, "beta", colour="blue"),
        }
    )
    flux.kustomization("app", path="./app", **spec)
    outcome = flux.driver.reconcile(flux.namespace, "app")
    assert outcome.ready, outcome.message
    return revision


def _assert_nothing_pruned(flux: Flux, good: str) -> None:
    beta = k8s.CoreV1Api(flux.kube_client).read_namespaced_config_map("beta", flux.apps_namespace)
    assert beta.data == {"colour": "blue"}
    status = flux.get("app")["status"]
    assert status["lastAppliedRevision"] == good
    assert [e["id"] for e in status["inventory"]["entries"]] == [
        f"{flux.apps_namespace}_alpha__ConfigMap",
        f"{flux.apps_namespace}_beta__ConfigMap",
    ]
    ready = flux.condition("app")
    assert ready["status"] == "False"
    reconciling = flux.condition("app", "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "ProgressingWithRetry")


def test_a_render_failure_is_build_failed_and_names_the_file(flux: Flux) -> None:
    good = _good(flux)
    bad = flux.commit({"app/beta.yaml": None, "app/broken.yaml": "kind: ConfigMap\nmetadata: [\n"})

    outcome = flux.driver.reconcile(flux.namespace, "app")

    assert outcome.reason == "BuildFailed"
    assert "broken.yaml" in outcome.message
    _assert_nothing_pruned(flux, good)
    assert flux.get("app")["status"]["lastAttemptedRevision"] == bad


def test_an_object_the_api_server_rejects_is_reconciliation_failed_naming_it(flux: Flux) -> None:
    good = _good(flux)
    flux.commit({"app/beta.yaml": None, "app/bad.yaml": _configmap(flux, "Not_A_Valid_Name")})

    outcome = flux.driver.reconcile(flux.namespace, "app")

    assert outcome.reason == "ReconciliationFailed"
    assert f"ConfigMap/{flux.apps_namespace}/Not_A_Valid_Name" in outcome.message
    assert "metadata.name" in outcome.message
    _assert_nothing_pruned(flux, good)
    [snapshot, _] = flux.get("app")["status"]["history"]
    assert snapshot["lastReconciledStatus"] == "ReconciliationFailed"


def test_an_rbac_denial_through_the_service_account_names_the_identity(flux: Flux) -> None:
    good = _good(flux)
    k8s.CoreV1Api(flux.kube_client).create_namespaced_service_account(
        flux.namespace, {"metadata": {"name": "deployer"}}
    )
    k8s.CustomObjectsApi(flux.kube_client).patch_namespaced_custom_object(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        flux.namespace,
        "kustomizations",
        "app",
        {"spec": {"serviceAccountName": "deployer"}},
    )
    flux.commit({"app/beta.yaml": None})

    outcome = flux.driver.reconcile(flux.namespace, "app")

    assert outcome.reason == "ReconciliationFailed"
    assert "forbidden" in outcome.message
    assert f"system:serviceaccount:{flux.namespace}:deployer" in outcome.message
    _assert_nothing_pruned(flux, good)


def test_an_artifact_outage_is_artifact_failed_and_prunes_nothing(flux: Flux) -> None:
    good = _good(flux)
    flux.commit({"app/beta.yaml": None})
    flux.shelf.stop()
    try:
        outcome = flux.driver.reconcile(flux.namespace, "app")
    finally:
        flux.shelf.start()

    assert outcome.reason == "ArtifactFailed"
    assert outcome.message.startswith(
        "failed to download artifact, error: artifact http://127.0.0.1:"
    )
    assert outcome.requeue_after == pytest.approx(600.0, rel=0.06)
    _assert_nothing_pruned(flux, good)


def test_a_garbage_collected_artifact_is_retried_as_flux_does(flux: Flux) -> None:
    good = _good(flux)
    flux.commit({"app/beta.yaml": None})
    for tarball in flux.shelf.root.glob(f"{flux.namespace}-*.tar.gz"):
        tarball.unlink()

    outcome = flux.driver.reconcile(flux.namespace, "app")

    assert outcome.reason == "ArtifactFailed"
    assert outcome.message == "Source is not ready, artifact not found, retrying in 30s"
    assert outcome.requeue_after == pytest.approx(30.0, rel=0.06)
    _assert_nothing_pruned(flux, good)


def test_secret_values_appear_in_no_event_condition_log_or_metric(
    flux: Flux, admin_kubeconfig: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every log line of ours, at every level; third-party libraries at the controller's default
    # level (the Kubernetes client logs whole response bodies at DEBUG).
    caplog.set_level(logging.INFO)
    for ours in ("core", "reconciler", "cli"):
        caplog.set_level(logging.DEBUG, logger=ours)
    flux.create_apps_namespace()
    k8s.CoreV1Api(flux.kube_client).create_namespaced_secret(
        flux.namespace,
        {
            "metadata": {"name": "creds"},
            "data": {"token": base64.b64encode(CANARY.encode()).decode()},
        },
    )
    flux.commit(
        {
            "app/uses.yaml": _configmap(flux, "uses", token="${token}"),
            "app/secret.yaml": f"""
                apiVersion: v1
                kind: Secret
                metadata: {{name: app-secret, namespace: {flux.apps_namespace}}}
                stringData: {{password: "${{token}}"}}
            """,
        }
    )
    flux.kustomization(
        "app", path="./app", postBuild={"substituteFrom": [{"kind": "Secret", "name": "creds"}]}
    )
    assert flux.driver.reconcile(flux.namespace, "app").ready
    applied = k8s.CoreV1Api(flux.kube_client).read_namespaced_config_map(
        "uses", flux.apps_namespace
    )
    assert applied.data == {"token": CANARY}  # the apply path does see the value
    # Then failures whose objects carry the value: an invalid object and a broken build.
    flux.commit({"app/bad.yaml": _configmap(flux, "Bad_Name", token="${token}")})
    assert flux.driver.reconcile(flux.namespace, "app").reason == "ReconciliationFailed"
    flux.commit({"app/bad.yaml": "kind: ConfigMap\ndata: {token: ${token}\n"})
    assert flux.driver.reconcile(flux.namespace, "app").reason == "BuildFailed"

    shown = [
        kubectl(admin_kubeconfig, "get", "ks", "app", "-n", flux.namespace, "-o", "yaml"),
        str(kubectl_json(admin_kubeconfig, "get", "events", "-n", flux.namespace)),
        str(kubectl_json(admin_kubeconfig, "get", "events", "-n", flux.apps_namespace)),
        repr(flux.events),
        repr(flux.driver.outcomes),
        caplog.text,
        generate_latest(REGISTRY).decode(),
    ]
    for text in shown:
        assert CANARY not in text
        assert base64.b64encode(CANARY.encode()).decode() not in text
