"""The Kustomization controller writes the pipeline's outcome on the real apiserver.

The pipeline is the real one; only its cluster engines and artifact fetcher are the pipeline
tests' fakes, as a suspended Kustomization needs neither: its run adds Flux's finalizer and
echoes `reconcile.fluxcd.io/requestedAt` into `status.lastHandledReconcileAt`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import KUSTOMIZATION
from core.cluster.fluxobjects import LiveCluster as FluxObjects
from core.cluster.watch import Lister
from reconciler.controllers import CachedReader, KustomizationController
from reconciler.informer import Cache
from reconciler.loop import Controller, Loop
from reconciler.metrics import Metrics
from tests.cluster.fluxcrds import install_flux_crds
from tests.cluster.kube import eventually
from tests.kustomization.fakes import world

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"


def test_a_suspended_kustomization_gets_the_finalizer_and_its_request_handled(
    dynamic_client: Any,
    kube_client: Any,
    namespace: str,
    tmp_path: Path,
    kustomize_bin: Path,
) -> None:
    install_flux_crds(dynamic_client)
    api = k8s.CustomObjectsApi(kube_client)
    api.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Kustomization",
            "metadata": {
                "name": "paused",
                "annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-30T12:00:00Z"},
            },
            "spec": {
                "interval": "10m",
                "path": "./",
                "prune": True,
                "suspend": True,
                "sourceRef": {"kind": "GitRepository", "name": "repo"},
            },
        },
    )
    fakes = world(tmp_path, kustomize_bin)
    cache = Cache()
    deps = fakes.deps
    deps = type(deps)(
        objects=CachedReader(cache, fakes.objects),
        artifacts=deps.artifacts,
        engines=deps.engines,
        events=deps.events,
        options=deps.options,
        clock=deps.clock,
    )
    flux = FluxObjects(kube_client)
    metrics = Metrics()
    controller = KustomizationController(deps, flux, metrics)
    loop = Loop(
        Lister(kube_client),
        [Controller(KUSTOMIZATION, controller.reconcile, controller.deleted)],
        cache=cache,
        namespace=namespace,
        metrics=metrics,
    )
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    try:

        def handled() -> dict[str, Any] | None:
            obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "paused")
            done = (obj.get("status") or {}).get("lastHandledReconcileAt")
            return obj if done == "2026-11-30T12:00:00Z" else None

        obj = eventually(handled, "the request to be handled")
        assert obj["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
        # Flux objects are read from the informer cache; other kinds from the fallback reader.
        reader = CachedReader(cache, fakes.objects)
        assert reader.get(f"{GROUP}/{VERSION}", "Kustomization", namespace, "paused") is not None
        assert reader.get("source.toolkit.fluxcd.io/v1", "GitRepository", namespace, "repo") is None
        assert fakes.objects.reads == []
        assert reader.get("v1", "ConfigMap", namespace, "vars") is None
        assert fakes.objects.reads == [("ConfigMap", namespace, "vars")]
    finally:
        stop.set()
        runner.join(30)
