"""A Kustomization's `spec.ignore` end to end: stored by the CRD, read by the reconcile, honoured.

The Deployment is scaled as an autoscaler scales it; the next reconcile leaves the replicas, while
a Kustomization without the rule reverts them. The CRD's schema refuses a rule without paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.kube import eventually, kubectl, status_of
from tests.reconcile.conftest import Flux, install_shipped_crds

pytestmark = pytest.mark.cluster


def _files(flux: Flux) -> dict[str, str | None]:
    return {
        "apps/deployment.yaml": f"""
            apiVersion: apps/v1
            kind: Deployment
            metadata: {{name: web, namespace: {flux.apps_namespace}}}
            spec:
              replicas: 1
              selector: {{matchLabels: {{app: web}}}}
              template:
                metadata: {{labels: {{app: web}}}}
                spec: {{containers: [{{name: app, image: registry.test/app:1}}]}}
        """,
    }


def _replicas(flux: Flux) -> int:
    apps = k8s.AppsV1Api(flux.kube_client)
    return int(apps.read_namespaced_deployment("web", flux.apps_namespace).spec.replicas)


@pytest.mark.parametrize("ignored", [True, False])
def test_scaled_replicas_survive_a_reconcile_only_under_an_ignore_rule(
    flux: Flux, admin_kubeconfig: Path, ignored: bool
) -> None:
    flux.create_apps_namespace()
    flux.commit(_files(flux))
    rules = [{"paths": ["/spec/replicas"], "target": {"kind": "Deployment", "name": "web"}}]
    flux.kustomization("apps", path="./apps", **({"ignore": rules} if ignored else {}))
    assert flux.driver.reconcile(flux.namespace, "apps").ready
    assert flux.get("apps")["spec"].get("ignore") == (rules if ignored else None)
    kubectl(admin_kubeconfig, "scale", "deployment/web", "-n", flux.apps_namespace, "--replicas=3")

    outcome = flux.driver.reconcile(flux.namespace, "apps")

    assert outcome.ready, outcome.message
    assert _replicas(flux) == (3 if ignored else 1)
    changes = {c.subject: c.action for c in outcome.changes}
    expected = "unchanged" if ignored else "configured"
    assert changes == {f"Deployment/{flux.apps_namespace}/web": expected}


def test_the_crd_refuses_an_ignore_rule_without_paths(
    flux: Flux, dynamic_client: Any, kube_client: Any
) -> None:
    install_shipped_crds(dynamic_client, kube_client)
    body = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": flux.namespace},
        "spec": {
            "interval": "10m",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            "ignore": [{"target": {"kind": "Deployment"}}],
        },
    }
    custom = k8s.CustomObjectsApi(flux.kube_client)

    def refused() -> bool:
        # A dry run: the apiserver may take a moment to serve a schema just re-applied.
        create = custom.create_namespaced_custom_object
        args = ("kustomize.toolkit.fluxcd.io", "v1", flux.namespace, "kustomizations", body)
        return status_of(lambda: create(*args, dry_run="All")) == 422

    eventually(refused, "the schema to refuse an ignore rule without paths")
