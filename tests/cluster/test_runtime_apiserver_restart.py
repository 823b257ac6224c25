"""The loop's watches survive a restarted kube-apiserver.

A control plane of its own (restarting the session's would cut every other test's
connections): the loop reconciles an object, the apiserver is stopped and started again on
the same port and etcd, and changes made afterwards still reach the reconcile function.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from core.cluster.fluxobjects import KUSTOMIZATION
from core.cluster.watch import Lister
from devenv.controlplane import ControlPlane
from reconciler.loop import Controller, Loop
from tests.cluster.fluxcrds import install_flux_crds
from tests.cluster.kube import eventually
from tests.fixtures.controlplane import api_client

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"


@pytest.fixture(scope="module")
def own_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("restart-plane"), fake_nodes=1)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def _ks(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Kustomization",
        "metadata": {"name": name},
        "spec": {"interval": "10m", "path": "./", "prune": True},
    }


def _create(kubeconfig: Path, namespace: str, name: str) -> None:
    # A fresh client each time: the old one's pooled connections died with the apiserver.
    with api_client(kubeconfig) as api:
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _ks(name)
        )


def test_watches_resume_after_the_apiserver_restarts(own_plane: ControlPlane) -> None:
    kubeconfig = own_plane.admin_kubeconfig
    with api_client(kubeconfig) as api:
        install_flux_crds(DynamicClient(api))
        k8s.CoreV1Api(api).create_namespace({"metadata": {"name": "restart"}})
    calls: collections.Counter[str] = collections.Counter()

    def reconcile(obj: dict[str, Any]) -> float | None:
        calls[obj["metadata"]["name"]] += 1
        return None

    with api_client(kubeconfig) as api:
        loop = Loop(Lister(api), [Controller(KUSTOMIZATION, reconcile)], namespace="restart")
        stop = threading.Event()
        runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
        runner.start()
        try:
            eventually(loop.synced, "the caches to sync")
            _create(kubeconfig, "restart", "before")
            eventually(lambda: calls["before"] == 1, "the first object")

            own_plane.restart_apiserver()

            _create(kubeconfig, "restart", "after")
            eventually(lambda: calls["after"] == 1, "an object created after the restart")
            with api_client(kubeconfig) as fresh:
                k8s.CustomObjectsApi(fresh).patch_namespaced_custom_object(
                    GROUP, VERSION, "restart", PLURAL, "before", {"spec": {"path": "./moved"}}
                )
            eventually(lambda: calls["before"] == 2, "a change after the restart")
        finally:
            stop.set()
            runner.join(60)
    assert not runner.is_alive()
