"""`tidegate reconcile` as a process, with a token of the ServiceAccount the chart creates.

The chart's RBAC is rendered with the pinned helm and applied; the controller then runs out of
cluster with that identity (not the admin's), watches the Flux namespace, downloads the
artifact the shelf serves and applies a Kustomization to Ready. SIGTERM then stops it with
exit 0. A no-op round (requestedAt) leaves the applied object as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from devenv.controlplane import ControlPlane
from tests.cluster.kube import eventually, unique_name
from tests.cluster.test_chart_rbac import _install
from tests.reconcile.conftest import Flux

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


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
            "deploy/settings.yaml": f"""
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: settings
                  namespace: {flux.apps_namespace}
                data:
                  colour: blue
            """,
        }
    )
    k8s.CoreV1Api(kube_client).create_namespace({"metadata": {"name": flux.apps_namespace}})
    flux.kustomization("apps", path="./deploy")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "reconcile",
            "--kubeconfig",
            str(token),
            "--watch-all-namespaces=false",
            "--artifact-allow-loopback",
            "--metrics-addr=127.0.0.1:0",
            "--health-addr=127.0.0.1:0",
            "--kustomize",
            str(kustomize_bin),
            "--work-dir",
            str(tmp_path / "controller"),
        ],
        cwd=ROOT,
        env={**os.environ, "RUNTIME_NAMESPACE": flux.namespace},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        obj = eventually(lambda: _ready(flux, "apps"), "the Kustomization to be Ready")
    except AssertionError as exc:
        process.kill()
        log = process.stderr.read() if process.stderr else ""
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
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(120)
        stderr = process.stderr.read() if process.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr
