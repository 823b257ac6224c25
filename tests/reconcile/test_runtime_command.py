"""`tidegate reconcile` as a process, with a token of the ServiceAccount the chart creates.

The chart's RBAC is rendered with the pinned helm and applied; the controller then runs out of
cluster with that identity (not the admin's), watches the Flux namespace and applies a
Kustomization to Ready. A no-op round (requestedAt) leaves the applied object as it was; a new
commit is fetched by the controller's own GitRepository reconcile, whose new artifact triggers
the Kustomization. SIGTERM then stops it with exit 0.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from devenv.controlplane import ControlPlane
from tests.cluster.kube import eventually, unique_name
from tests.cluster.test_chart_rbac import _install
from tests.fixtures.gitserver import commit, git
from tests.reconcile.conftest import Flux
from tests.reconcile.controller import start_controller

pytestmark = pytest.mark.cluster


KS = ("kustomize.toolkit.fluxcd.io", "v1")
SOURCE = ("source.toolkit.fluxcd.io", "v1")


def _settings(flux: Flux, colour: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
        f"  namespace: {flux.apps_namespace}\ndata:\n  colour: {colour}\n"
    )


def _requested(value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": value}}}


def _ready(flux: Flux, name: str) -> dict[str, Any] | None:
    obj = flux.get(name)
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return obj if ready else None


def test_the_controller_reconciles_a_kustomization_as_the_charts_service_account(
    flux: Flux,
    helm_bin: Path,
    kustomize_bin: Path,
    control_plane: ControlPlane,
    admin_kubeconfig: Path,
    kube_client: Any,
    tmp_path: Path,
) -> None:
    release = unique_name("tg")
    _install(helm_bin, admin_kubeconfig, release, flux.namespace, tmp_path, admin=True)
    token = control_plane.service_account_kubeconfig(
        flux.namespace, f"{release}-reconciler", create=False
    )
    revision = flux.commit(
        {
            "deploy/kustomization.yaml": "resources: [settings.yaml]\n",
            "deploy/settings.yaml": _settings(flux, "blue"),
        }
    )
    k8s.CoreV1Api(kube_client).create_namespace({"metadata": {"name": flux.apps_namespace}})
    flux.kustomization("apps", path="./deploy")
    process = start_controller(token, flux.namespace, kustomize_bin, tmp_path / "controller")
    try:
        obj = eventually(lambda: _ready(flux, "apps"), "the Kustomization to be Ready")
    except AssertionError as exc:
        process.kill()
        log = process.log()
        raise AssertionError(
            f"{exc}\nstatus: {flux.get('apps').get('status')}\nlog: {log}"
        ) from None
    try:
        assert obj["status"]["lastAppliedRevision"] == revision
        assert obj["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
        settings = k8s.CoreV1Api(kube_client).read_namespaced_config_map(
            "settings", flux.apps_namespace
        )
        assert settings.data == {"colour": "blue"}
        assert settings.metadata.labels["kustomize.toolkit.fluxcd.io/name"] == "apps"

        # A no-op round: the request is handled and the applied object is left as it was.
        flux_api = k8s.CustomObjectsApi(kube_client)
        flux_api.patch_namespaced_custom_object(
            *KS, flux.namespace, "kustomizations", "apps", _requested("noop")
        )
        eventually(
            lambda: flux.get("apps")["status"].get("lastHandledReconcileAt") == "noop",
            "the no-op request to be handled",
        )
        again = k8s.CoreV1Api(kube_client).read_namespaced_config_map(
            "settings", flux.apps_namespace
        )
        assert again.metadata.resource_version == settings.metadata.resource_version

        # A new commit reaches the cluster through the controller's own GitRepository fetch:
        # its new artifact enqueues the Kustomization.
        commit(flux.work, {"deploy/settings.yaml": _settings(flux, "green").encode()}, "green")
        git("push", "--quiet", flux.repo.push_url, "HEAD:main", cwd=flux.work)
        head = git("rev-parse", "HEAD", cwd=flux.work)
        flux_api.patch_namespaced_custom_object(
            *SOURCE, flux.namespace, "gitrepositories", "flux-system", _requested("fetch")
        )

        def green() -> bool:
            cm = k8s.CoreV1Api(kube_client).read_namespaced_config_map(
                "settings", flux.apps_namespace
            )
            return bool(cm.data == {"colour": "green"})

        eventually(green, "the new commit to be applied")
        source = flux_api.get_namespaced_custom_object(
            *SOURCE, flux.namespace, "gitrepositories", "flux-system"
        )
        assert source["status"]["artifact"]["revision"] == f"main@sha1:{head}"
        eventually(
            lambda: flux.get("apps")["status"].get("lastAppliedRevision") == f"main@sha1:{head}",
            "the new revision in the status",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(120)
        stderr = process.log()
    assert code == 0, stderr
    assert "Traceback" not in stderr
