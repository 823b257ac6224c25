"""Our GitRepository artifacts consumed by our Kustomization pipeline on the real control plane.

The source service fetches the repository from the local git server, stores and serves the
artifact and writes the GitRepository's status; the Kustomization pipeline (the acceptance
tests' driver and fixtures) downloads `status.artifact.url` and applies it. Then git becomes
unreachable: the GitRepository turns Ready=False, its artifact stays, and the Kustomization keeps
reconciling the last revision (a deleted object comes back).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import LiveCluster as FluxObjects
from devenv.ports import refusing_port
from reconciler.source.service import GitSourceService, SourceSettings
from tests.fixtures.gitserver import commit, git

# The acceptance tests' fixtures: Flux CRDs, a Flux namespace, the pipeline's driver.
from tests.reconcile.conftest import Flux, cluster, flux, flux_crds, shelf  # noqa: F401

pytestmark = pytest.mark.cluster

SOURCE = ("source.toolkit.fluxcd.io", "v1")


@pytest.fixture
def source(kube_client: Any, tmp_path: Path) -> Iterator[GitSourceService]:
    settings = SourceSettings(tmp_path / "storage", tmp_path / "git-cache", "127.0.0.1", 0)
    with GitSourceService(FluxObjects(kube_client), settings) as service:
        yield service


def _git_repository(flux: Flux) -> dict[str, Any]:  # noqa: F811 - the fixture's value
    found: dict[str, Any] = k8s.CustomObjectsApi(flux.kube_client).get_namespaced_custom_object(
        *SOURCE, flux.namespace, "gitrepositories", "flux-system"
    )
    return found


def test_kustomizations_apply_our_artifacts_and_outlive_a_git_outage(
    flux: Flux,  # noqa: F811 - the acceptance tests' fixture, imported above
    source: GitSourceService,
) -> None:
    files = {
        "deploy/namespace.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "
        f"{flux.apps_namespace}\n",
        "deploy/settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
        f"  namespace: {flux.apps_namespace}\ndata:\n  greeting: hello\n",
        "deploy/logo.png": "not an image, and ignored by Flux's defaults",
    }
    head = commit(flux.work, {path: text.encode() for path, text in files.items()})
    git("push", "--quiet", flux.repo.push_url, "HEAD:main", cwd=flux.work)
    revision = f"main@sha1:{head}"

    assert source.reconcile(_git_repository(flux)) == 60.0
    artifact = _git_repository(flux)["status"]["artifact"]
    assert artifact["revision"] == revision

    flux.kustomization("apps", path="./deploy")
    outcome = flux.driver.converge(flux.namespace)["apps"]
    assert outcome.ready, outcome.message
    assert flux.get("apps")["status"]["lastAppliedRevision"] == revision
    core = k8s.CoreV1Api(flux.kube_client)
    assert core.read_namespaced_config_map("settings", flux.apps_namespace).data == {
        "greeting": "hello"
    }

    # Git goes away: the source fails, keeping its artifact and URL.
    with refusing_port() as dead:
        k8s.CustomObjectsApi(flux.kube_client).patch_namespaced_custom_object(
            *SOURCE, flux.namespace, "gitrepositories", "flux-system",
            {"spec": {"url": f"http://127.0.0.1:{dead}/gone.git"}},
        )  # fmt: skip
        assert source.reconcile(_git_repository(flux)) == 0.75
    status = _git_repository(flux)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "GitOperationFailed")
    assert status["artifact"] == artifact

    # The Kustomization still reconciles the last artifact: drift is corrected.
    core.delete_namespaced_config_map("settings", flux.apps_namespace)
    again = flux.driver.reconcile(flux.namespace, "apps")
    assert again.ready, again.message
    assert core.read_namespaced_config_map("settings", flux.apps_namespace).data == {
        "greeting": "hello"
    }
