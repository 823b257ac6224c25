"""A Git outage with the real GitRepository controller: Flux's reason, the last artifact kept.

As Flux: when Git cannot be reached the GitRepository turns Ready=False (GitOperationFailed) but
keeps serving its last artifact, so its Kustomizations stay Ready on the last revision, keep
correcting drift, and prune nothing that a commit they never saw removed. When Git is back the
new revision is applied.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import LiveCluster as FluxObjects
from reconciler.source.service import GitSourceService, SourceSettings
from tests.cluster.kube import status_of
from tests.fixtures.gitserver import commit, git
from tests.reconcile.conftest import Flux

pytestmark = pytest.mark.cluster


def _configmap(flux: Flux, name: str) -> bytes:
    return textwrap.dedent(
        f"""
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: {name}, namespace: {flux.apps_namespace}}}
        data: {{colour: blue}}
        """
    ).encode()


def _source(flux: Flux) -> dict[str, Any]:
    found: dict[str, Any] = k8s.CustomObjectsApi(flux.kube_client).get_namespaced_custom_object(
        "source.toolkit.fluxcd.io", "v1", flux.namespace, "gitrepositories", "flux-system"
    )
    return found


def test_a_git_outage_keeps_the_last_artifact_and_prunes_nothing(
    flux: Flux, tmp_path: Path
) -> None:
    flux.create_apps_namespace()
    settings = SourceSettings(tmp_path / "storage", tmp_path / "git-cache", "127.0.0.1", 0)
    core = k8s.CoreV1Api(flux.kube_client)
    with GitSourceService(FluxObjects(flux.kube_client), settings) as source:
        commit(flux.work, {"app/alpha.yaml": _configmap(flux, "alpha")})
        commit(flux.work, {"app/beta.yaml": _configmap(flux, "beta")})
        git("push", "--quiet", flux.repo.push_url, "HEAD:main", cwd=flux.work)
        source.reconcile(_source(flux))
        first = _source(flux)["status"]["artifact"]["revision"]
        flux.kustomization("app", path="./app")
        assert flux.driver.reconcile(flux.namespace, "app").ready

        commit(flux.work, {"app/beta.yaml": None}, "drop beta")
        git("push", "--quiet", flux.repo.push_url, "HEAD:main", cwd=flux.work)
        hidden = flux.repo.path.with_name(flux.repo.path.name + ".offline")
        flux.repo.path.rename(hidden)
        try:
            source.reconcile(_source(flux))
            outage = _source(flux)["status"]
            kept = flux.driver.reconcile(flux.namespace, "app")
        finally:
            hidden.rename(flux.repo.path)

        ready = next(c for c in outage["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "GitOperationFailed")
        assert outage["artifact"]["revision"] == first
        assert kept.ready
        assert flux.get("app")["status"]["lastAppliedRevision"] == first
        assert core.read_namespaced_config_map("beta", flux.apps_namespace).data == {
            "colour": "blue"
        }

        source.reconcile(_source(flux))
        back = flux.driver.reconcile(flux.namespace, "app")

    assert back.ready
    assert flux.get("app")["status"]["lastAppliedRevision"] != first
    gone = status_of(lambda: core.read_namespaced_config_map("beta", flux.apps_namespace))
    assert gone == 404
