"""kill -9 of the controller in the middle of an apply, then a restart: it converges.

The Kustomization holds many ConfigMaps so the apply takes a while; the controller is killed
with SIGKILL once some (not all) of them exist, and started again. The restarted controller
applies the rest and records an inventory of every object exactly once: nothing is lost and
nothing is duplicated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from devenv.ports import free_port
from tests.cluster.kube import eventually
from tests.reconcile.conftest import Flux
from tests.reconcile.controller import start_controller

pytestmark = pytest.mark.cluster

COUNT = 200


def _manifests(namespace: str) -> dict[str, str]:
    documents = [
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04d}\n"
        f"  namespace: {namespace}\ndata:\n  index: '{i}'\n"
        for i in range(COUNT)
    ]
    return {
        "deploy/kustomization.yaml": "resources: [objects.yaml]\n",
        "deploy/objects.yaml": "---\n".join(documents),
    }


def _applied(kube_client: Any, namespace: str) -> list[str]:
    listed = k8s.CoreV1Api(kube_client).list_namespaced_config_map(
        namespace, label_selector="kustomize.toolkit.fluxcd.io/name=apps"
    )
    return [item.metadata.name for item in listed.items]


def test_a_controller_killed_mid_apply_converges_after_restart(
    flux: Flux, kustomize_bin: Path, admin_kubeconfig: Path, kube_client: Any, tmp_path: Path
) -> None:
    revision = flux.commit(_manifests(flux.apps_namespace))
    k8s.CoreV1Api(kube_client).create_namespace({"metadata": {"name": flux.apps_namespace}})
    flux.kustomization("apps", path="./deploy")
    # The restarted controller keeps its storage and address, as a pod with a volume and a
    # Service does, so the artifact URL in the GitRepository's status stays valid.
    port = free_port()
    work = tmp_path / "controller"
    first = start_controller(
        admin_kubeconfig, flux.namespace, kustomize_bin, work, storage_port=port
    )
    try:
        partial = eventually(
            lambda: len(_applied(kube_client, flux.apps_namespace)) or None,
            "the apply to begin",
            timeout=300,
        )
    finally:
        first.kill()
        first.wait(60)
    at_kill = len(_applied(kube_client, flux.apps_namespace))
    assert partial < COUNT, "the apply finished before the kill; the test proves nothing"
    second = start_controller(
        admin_kubeconfig, flux.namespace, kustomize_bin, work, storage_port=port
    )
    try:

        def done() -> dict[str, Any] | None:
            obj = flux.get("apps")
            status = obj.get("status") or {}
            return obj if status.get("lastAppliedRevision") == revision else None

        try:
            obj = eventually(done, "the restarted controller to converge", timeout=300)
        except AssertionError as exc:
            second.kill()
            log = second.log()
            status = flux.get("apps").get("status")
            raise AssertionError(f"{exc}\nstatus: {status}\nlog: {log[-3000:]}") from None
    finally:
        second.kill()
        second.wait(60)
    names = _applied(kube_client, flux.apps_namespace)
    assert sorted(names) == [f"cm-{i:04d}" for i in range(COUNT)]
    ids = [entry["id"] for entry in obj["status"]["inventory"]["entries"]]
    assert len(ids) == len(set(ids)) == COUNT
    assert at_kill <= COUNT
