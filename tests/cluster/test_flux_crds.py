"""The shipped Flux CRDs on the real control plane: kubectl and kstatus read them as Flux's.

Installs the package's CRDs, creates a Kustomization and a GitRepository, writes a Ready condition
through the status subresource (as the reconciler does), and reads them back with the pinned
kubectl: short names, printer columns and `kubectl wait --for=condition=Ready`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from reconciler import crds
from tests.cluster.kube import apply, eventually, kubectl, kubectl_json

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def _established(kube_client: Any, name: str) -> bool:
    crd = k8s.ApiextensionsV1Api(kube_client).read_custom_resource_definition(name)
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="module")
def installed(dynamic_client: Any, kube_client: Any) -> None:
    for crd in crds.documents():
        apply(dynamic_client, crd)
        name = crd["metadata"]["name"]
        eventually(lambda name=name: _established(kube_client, name), f"CRD {name} established")


def _ready(kube_client: Any, plural: str, group: str, namespace: str, name: str) -> None:
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "ReconciliationSucceeded",
        "message": "Applied revision: main@sha1:" + "a" * 40,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1,
    }
    k8s.CustomObjectsApi(kube_client).patch_namespaced_custom_object_status(
        group, "v1", namespace, plural, name, {"status": {"conditions": [condition]}}
    )


def test_kustomizations_read_as_flux_with_kubectl(
    installed: None, dynamic_client: Any, kube_client: Any, admin_kubeconfig: Path, namespace: str
) -> None:
    apply(
        dynamic_client,
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": namespace},
            "spec": {
                "interval": "10m",
                "prune": True,
                "path": "./apps",
                "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            },
        },
    )
    fresh = kubectl_json(admin_kubeconfig, "get", "ks", "apps", "-n", namespace)
    assert fresh["status"] == {"observedGeneration": -1}

    _ready(kube_client, "kustomizations", "kustomize.toolkit.fluxcd.io", namespace, "apps")

    kubectl(
        admin_kubeconfig, "wait", "--for=condition=Ready", "kustomization/apps", "-n", namespace,
        "--timeout=300s",
    )  # fmt: skip
    header, row = kubectl(admin_kubeconfig, "get", "ks", "-n", namespace).splitlines()
    assert header.split() == ["NAME", "AGE", "READY", "STATUS"]
    assert row.split()[0] == "apps"
    assert row.split()[2:] == ["True", "Applied", "revision:", "main@sha1:" + "a" * 40]
    assert "apps" in kubectl(admin_kubeconfig, "get", "fluxcd-appliers", "-n", namespace)


def test_git_repositories_read_as_flux_and_bad_specs_are_refused(
    installed: None, dynamic_client: Any, kube_client: Any, admin_kubeconfig: Path, namespace: str
) -> None:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": namespace},
        "spec": {"url": "https://git.example.com/fleet.git", "interval": "1m"},
    }
    apply(dynamic_client, body)
    _ready(kube_client, "gitrepositories", "source.toolkit.fluxcd.io", namespace, "flux-system")

    header, row = kubectl(admin_kubeconfig, "get", "gitrepo", "-n", namespace).splitlines()
    assert header.split() == ["NAME", "URL", "AGE", "READY", "STATUS"]
    assert row.split()[:2] == ["flux-system", "https://git.example.com/fleet.git"]

    bad = {**body, "metadata": {"name": "bad", "namespace": namespace}}
    bad["spec"] = {"url": "file:///etc", "interval": "1m"}
    with pytest.raises(k8s.ApiException) as caught:
        apply(dynamic_client, bad)
    assert caught.value.status == 422


def test_the_chart_ships_the_same_crds() -> None:
    for name in crds.FILES:
        shipped = (ROOT / "reconciler" / "crds" / name).read_text()
        assert (ROOT / "charts" / "tidegate" / "crds" / name).read_text() == shipped
