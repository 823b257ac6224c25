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
from core.cluster.port import Conflict
from core.cluster.watch import Lister
from reconciler.controllers import CachedReader, KustomizationController
from reconciler.informer import Cache
from reconciler.kustomization.deps import Deps
from reconciler.loop import Controller, Loop
from reconciler.metrics import Metrics
from tests.cluster.fluxcrds import install_flux_crds
from tests.cluster.kube import eventually
from tests.kustomization.fakes import world

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"


def _create_paused(api: Any, namespace: str) -> None:
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


def _deps(fakes: Any, cache: Cache) -> Deps:
    deps = fakes.deps
    return Deps(
        objects=CachedReader(cache, fakes.objects),
        artifacts=deps.artifacts,
        engines=deps.engines,
        events=deps.events,
        options=deps.options,
        clock=deps.clock,
    )


def test_a_suspended_kustomization_gets_the_finalizer_and_its_request_handled(
    dynamic_client: Any,
    kube_client: Any,
    namespace: str,
    tmp_path: Path,
    kustomize_bin: Path,
) -> None:
    install_flux_crds(dynamic_client)
    api = k8s.CustomObjectsApi(kube_client)
    _create_paused(api, namespace)
    fakes = world(tmp_path, kustomize_bin)
    cache = Cache()
    deps = _deps(fakes, cache)
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


class RacingWriter:
    """The real writer, but another client adds its finalizer just before our first write."""

    def __init__(self, flux: FluxObjects, api: Any) -> None:
        self.flux, self.api = flux, api
        self.conflicts = 0
        self.raced = False

    def merge_patch(self, kind: Any, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        if not self.raced:
            self.raced = True
            live = self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            others = [*(live["metadata"].get("finalizers") or []), "example.com/other"]
            self.api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": others}}
            )
        try:
            return self.flux.merge_patch(kind, namespace, name, patch)
        except Conflict:
            self.conflicts += 1
            raise

    def merge_patch_status(self, kind: Any, namespace: str, name: str, patch: Any) -> Any:
        return self.flux.merge_patch_status(kind, namespace, name, patch)

    def get(self, kind: Any, namespace: str, name: str) -> Any:
        return self.flux.get(kind, namespace, name)


def test_adding_the_finalizer_keeps_a_finalizer_another_client_added_meanwhile(
    dynamic_client: Any,
    kube_client: Any,
    namespace: str,
    tmp_path: Path,
    kustomize_bin: Path,
) -> None:
    install_flux_crds(dynamic_client)
    api = k8s.CustomObjectsApi(kube_client)
    _create_paused(api, namespace)
    fakes = world(tmp_path, kustomize_bin)
    writer = RacingWriter(FluxObjects(kube_client), api)
    controller = KustomizationController(_deps(fakes, Cache()), writer)
    obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "paused")

    controller.reconcile(obj)

    live = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "paused")
    assert live["metadata"]["finalizers"] == ["example.com/other", "finalizers.fluxcd.io"]
    assert writer.conflicts == 1  # the stale write was refused, not applied over theirs
    assert live["status"]["lastHandledReconcileAt"] == "2026-11-30T12:00:00Z"
