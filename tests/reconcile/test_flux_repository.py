"""A Flux-style repository reconciled end to end on the real control plane.

clusters/production -> infrastructure -> apps (dependsOn, wait) reaches Ready, the Deployment is
Available, `kubectl get ks` shows Flux's printer columns and `kubectl wait` works; then a new
commit is applied, removed manifests are pruned (not under `prune: false` or the prune-disabled
annotation) and a manual edit is reverted at the next reconcile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.kube import kubectl, kubectl_json, status_of
from tests.reconcile.conftest import Flux
from tests.reconcile.repos import production

pytestmark = pytest.mark.cluster


def _bootstrap(flux: Flux) -> str:
    revision = flux.commit(production(flux), "bootstrap")
    flux.kustomization("flux-system", path="./clusters/production")
    outcomes = flux.driver.converge(flux.namespace)
    assert {name: o.ready for name, o in outcomes.items()} == {
        "apps": True,
        "extras": True,
        "flux-system": True,
        "infrastructure": True,
    }, {name: o.message for name, o in outcomes.items()}
    return revision


def test_a_flux_repository_reconciles_to_ready_and_reads_as_flux(
    flux: Flux, admin_kubeconfig: Path
) -> None:
    revision = _bootstrap(flux)

    apps = flux.get("apps")
    assert apps["status"]["lastAppliedRevision"] == revision
    assert apps["status"]["lastAttemptedRevision"] == revision
    assert apps["status"]["observedGeneration"] == apps["metadata"]["generation"]
    assert apps["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    ready = flux.condition("apps")
    assert (ready["status"], ready["reason"]) == ("True", "ReconciliationSucceeded")
    assert ready["message"] == f"Applied revision: {revision}"
    healthy = flux.condition("apps", "Healthy")
    assert (healthy["status"], healthy["reason"]) == ("True", "Succeeded")
    assert [e["id"] for e in apps["status"]["inventory"]["entries"]] == [
        f"{flux.apps_namespace}_keep__ConfigMap",
        f"{flux.apps_namespace}_settings__ConfigMap",
        f"{flux.apps_namespace}_web__Service",
        f"{flux.apps_namespace}_web_apps_Deployment",
    ]
    [snapshot] = apps["status"]["history"]
    assert snapshot["lastReconciledStatus"] == "ReconciliationSucceeded"
    assert snapshot["metadata"] == {"revision": revision}
    # The dependency was waited for: apps first failed with Flux's message, then succeeded.
    waits = [o.message for name, o in flux.driver.outcomes if name.endswith("/apps")]
    assert waits[0] == f"dependency '{flux.namespace}/infrastructure' is not ready"

    deployment = k8s.AppsV1Api(flux.kube_client).read_namespaced_deployment(
        "web", flux.apps_namespace
    )
    available = [c for c in deployment.status.conditions if c.type == "Available"]
    assert available[0].status == "True"
    settings = k8s.CoreV1Api(flux.kube_client).read_namespaced_config_map(
        "settings", flux.apps_namespace
    )
    assert settings.data == {"greeting": "hello", "tier": "production"}
    assert settings.metadata.labels["kustomize.toolkit.fluxcd.io/name"] == "apps"
    assert settings.metadata.labels["kustomize.toolkit.fluxcd.io/namespace"] == flux.namespace

    table = kubectl(admin_kubeconfig, "get", "ks", "-n", flux.namespace).splitlines()
    assert table[0].split() == ["NAME", "AGE", "READY", "STATUS"]
    row = next(line for line in table if line.startswith("apps "))
    assert row.split()[2:] == ["True", "Applied", "revision:", revision]
    waited = kubectl(
        admin_kubeconfig,
        "wait",
        "--for=condition=Ready",
        "kustomization/apps",
        "-n",
        flux.namespace,
        "--timeout=300s",
    )
    assert "condition met" in waited

    events = kubectl_json(admin_kubeconfig, "get", "events", "-n", flux.namespace)["items"]
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in events}
    assert ("apps", "ReconciliationSucceeded") in reasons
    assert ("apps", "DependencyNotReady") in reasons
    finished = [e for e in flux.events if e.involved_object.name == "apps" and e.metadata]
    assert finished[-1].metadata == {
        "kustomize.toolkit.fluxcd.io/revision": revision,
        "kustomize.toolkit.fluxcd.io/commit_status": "update",
    }


def _configmap(flux: Flux, name: str) -> Any:
    return k8s.CoreV1Api(flux.kube_client).read_namespaced_config_map(name, flux.apps_namespace)


def test_new_commits_are_applied_removed_manifests_pruned_and_edits_reverted(
    flux: Flux, admin_kubeconfig: Path
) -> None:
    _bootstrap(flux)
    core = k8s.CoreV1Api(flux.kube_client)
    kubectl(
        admin_kubeconfig,
        "patch",
        "configmap",
        "settings",
        "-n",
        flux.apps_namespace,
        "--type=merge",
        "-p",
        '{"data":{"greeting":"edited by hand"}}',
    )
    assert _configmap(flux, "settings").data["greeting"] == "edited by hand"

    flux.driver.reconcile(flux.namespace, "apps")

    assert _configmap(flux, "settings").data["greeting"] == "hello"

    revision = flux.commit(
        {
            "infrastructure/cluster-vars.yaml": f"""
                apiVersion: v1
                kind: ConfigMap
                metadata: {{name: cluster-vars, namespace: {flux.namespace}}}
                data: {{greeting: bonjour, tier: production}}
            """,
            "apps/kustomization.yaml": """
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources: [deployment.yaml, settings.yaml]
            """,
            "apps/service.yaml": None,
            "apps/keep.yaml": None,
            "extras/two.yaml": None,
        },
        "second",
    )
    outcomes = flux.driver.converge(flux.namespace)

    assert all(o.ready for o in outcomes.values()), {n: o.message for n, o in outcomes.items()}
    assert flux.get("apps")["status"]["lastAppliedRevision"] == revision
    assert _configmap(flux, "settings").data["greeting"] == "bonjour"
    gone = status_of(lambda: core.read_namespaced_service("web", flux.apps_namespace))
    assert gone == 404
    # The prune-disabled annotation and `prune: false` keep what the build no longer makes.
    assert _configmap(flux, "keep").data == {"kept": "yes"}
    assert _configmap(flux, "extra-two").metadata.name == "extra-two"
    ids = [e["id"] for e in flux.get("apps")["status"]["inventory"]["entries"]]
    assert ids == [
        f"{flux.apps_namespace}_settings__ConfigMap",
        f"{flux.apps_namespace}_web_apps_Deployment",
    ]
    messages = [e.message for e in flux.events if e.involved_object.name == "apps"]
    assert f"Service/{flux.apps_namespace}/web deleted" in "\n".join(messages)
    [latest, first] = flux.get("apps")["status"]["history"]
    assert latest["metadata"] == {"revision": revision}
    assert first["lastReconciledStatus"] == "ReconciliationSucceeded"
