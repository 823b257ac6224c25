"""The GitRepository reconcile against the real control plane with the shipped Flux CRDs.

A GitRepository and its Secret live in a fresh namespace; one pass fetches from the private HTTPS
git server, stores the artifact behind a real artifact server and writes the status through the
`/status` subresource. It is read back through the CRD's schema (unknown fields would be pruned)
with the pinned kubectl: printer columns, `kubectl wait --for=condition=Ready`, and after the
password is changed to a wrong one, Ready=False with a message that carries no secret.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import LiveCluster
from reconciler import crds
from reconciler.source.checkout import GitFetcher
from reconciler.source.gitrepository import GitRepositoryReconciler, reconcile_git_repository
from reconciler.source.server import ArtifactServer
from reconciler.source.storage import Storage
from tests.cluster.kube import apply, eventually, kubectl, kubectl_json
from tests.fixtures.gitserver import GIT_PASSWORD, GIT_USER, SecureGit, commit, git

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "source.toolkit.fluxcd.io", "v1", "gitrepositories"


def _established(kube_client: Any, name: str) -> bool:
    crd = k8s.ApiextensionsV1Api(kube_client).read_custom_resource_definition(name)
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="module")
def shipped_crds(dynamic_client: Any, kube_client: Any) -> None:
    for crd in crds.documents():
        apply(dynamic_client, crd)
        name = crd["metadata"]["name"]
        eventually(lambda name=name: _established(kube_client, name), f"CRD {name} established")


@pytest.fixture
def artifact_server(tmp_path: Path) -> Iterator[ArtifactServer]:
    with ArtifactServer(tmp_path / "storage") as server:
        yield server


def _secret(namespace: str, password: str, ca: bytes) -> dict[str, Any]:
    data = {"username": GIT_USER.encode(), "password": password.encode(), "ca.crt": ca}
    return {
        "metadata": {"name": "git-auth", "namespace": namespace},
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def test_status_is_written_and_read_back_as_flux_writes_it(
    shipped_crds: None,
    kube_client: Any,
    admin_kubeconfig: Path,
    namespace: str,
    secure_git: SecureGit,
    artifact_server: ArtifactServer,
    tmp_path: Path,
) -> None:
    name = secure_git.create_repo(f"controller-{namespace}")
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    head = commit(work, {"apps/app.yaml": b"kind: ConfigMap\n"})
    git("push", "--quiet", str(secure_git.https.root / f"{name}.git"), "main", cwd=work)

    core = k8s.CoreV1Api(kube_client)
    core.create_namespaced_secret(namespace, _secret(namespace, GIT_PASSWORD, secure_git.ca_pem))
    objects = k8s.CustomObjectsApi(kube_client)
    url = secure_git.https.repo_url(name)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GitRepository",
        "metadata": {
            "name": "flux-system",
            "namespace": namespace,
            "annotations": {"reconcile.fluxcd.io/requestedAt": "now-1"},
        },
        "spec": {
            "url": url,
            "interval": "1m",
            "ref": {"branch": "main"},
            "secretRef": {"name": "git-auth"},
            "ignore": "/docs/\n",
        },
    }
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    live = LiveCluster(kube_client)
    reconciler = GitRepositoryReconciler(
        live, Storage(tmp_path / "storage", artifact_server.url), GitFetcher(tmp_path / "cache")
    )

    obj = live_object(objects, namespace)
    result = reconcile_git_repository(obj, reconciler)
    assert result.ready

    kubectl(
        admin_kubeconfig, "wait", "--for=condition=Ready", "gitrepository/flux-system",
        "-n", namespace, "--timeout=300s",
    )  # fmt: skip
    header, row = kubectl(admin_kubeconfig, "get", "gitrepo", "-n", namespace).splitlines()
    assert header.split() == ["NAME", "URL", "AGE", "READY", "STATUS"]
    revision = f"main@sha1:{head}"
    assert row.split()[:2] == ["flux-system", url]
    assert row.split()[3:] == ["True", "stored", "artifact", "for", "revision", f"'{revision}'"]

    status = kubectl_json(admin_kubeconfig, "get", "gitrepo", "flux-system", "-n", namespace)[
        "status"
    ]
    artifact = status["artifact"]
    assert set(artifact) == {"digest", "lastUpdateTime", "path", "revision", "size", "url"}
    assert artifact["revision"] == revision
    assert artifact["url"] == f"{artifact_server.url}/{artifact['path']}"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["observedIgnore"] == "/docs/\n"
    assert status["lastHandledReconcileAt"] == "now-1"
    assert {c["type"] for c in status["conditions"]} == {"Ready", "ArtifactInStorage"}

    core.patch_namespaced_secret(
        "git-auth", namespace, _secret(namespace, "Cluster-Leak-0042", secure_git.ca_pem)
    )
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "flux-system",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now-2"}}},
    )  # fmt: skip
    failed = reconcile_git_repository(live_object(objects, namespace), reconciler)
    assert not failed.ready
    shown = kubectl(admin_kubeconfig, "get", "gitrepo", "-n", namespace)
    assert "False" in shown
    assert "failed to checkout and determine revision" in shown
    after = kubectl_json(admin_kubeconfig, "get", "gitrepo", "flux-system", "-n", namespace)
    assert "Cluster-Leak-0042" not in repr(after)
    conditions = {c["type"]: c for c in after["status"]["conditions"]}
    assert conditions["Ready"]["reason"] == "AuthenticationFailed"
    assert conditions["FetchFailed"]["status"] == "True"
    assert conditions["Reconciling"]["reason"] == "ProgressingWithRetry"
    assert after["status"]["artifact"] == artifact
    assert after["status"]["lastHandledReconcileAt"] == "now-2"


def live_object(objects: Any, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = objects.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "flux-system"
    )
    return found
