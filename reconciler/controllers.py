"""The loop's controllers: run one reconcile and write its outcome, as kustomize-controller does.

`KustomizationController.reconcile(obj)` is the function the loop calls with the cached object.
It runs `reconcile_kustomization(obj, deps)` and writes what the outcome asks, in Flux's order:
the finalizer first (added before anything is applied), then the whole status as one merge
patch of the status subresource (so a stopped process leaves the old status or the new one,
never half of each), and the finalizer's removal last. A finalizer write replaces the list, so
it carries the resourceVersion of the object last seen: when someone else changed the object
in between (another controller's finalizer), the apiserver refuses it, the object is read
again and the change made on what is there now, so their update is never overwritten. It
counts the outcome's applied and pruned objects in the metrics and returns the requeue delay to
the loop.

`CachedReader` is the pipeline's `ObjectReader`: Flux objects (the Kustomizations a dependsOn
names, the sources) come from the informer cache, everything else from the fallback reader, so
a no-op reconcile costs no GET of a Flux object. This module holds no reconcile rule.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from core.cluster.fluxobjects import GIT_REPOSITORY, KUSTOMIZATION, FluxKind
from core.cluster.port import Conflict
from reconciler.informer import Cache
from reconciler.kustomization.deps import Deps, ObjectReader
from reconciler.kustomization.model import FINALIZER, FinalizerChange
from reconciler.metrics import Metrics
from reconciler.pipeline import reconcile_kustomization
from reconciler.status_writer import write_status

__all__ = ["CachedReader", "FluxWriter", "KustomizationController"]

_PRUNE_ACTIONS = ("deleted",)
# Tries at a guarded finalizer write before the run fails and the loop retries it.
_FINALIZER_ATTEMPTS = 5


class FluxWriter(Protocol):
    """Merge patches of Flux objects and their status (`core.cluster.fluxobjects.LiveCluster`)."""

    def merge_patch(
        self, kind: FluxKind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Patch the object."""

    def merge_patch_status(
        self, kind: FluxKind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Patch the status subresource."""

    def get(self, kind: FluxKind, namespace: str, name: str) -> dict[str, Any]:
        """Read the object from the apiserver."""


class CachedReader:
    """Flux objects from the informer cache; other kinds from `fallback`."""

    def __init__(self, cache: Cache, fallback: ObjectReader) -> None:
        self._cache = cache
        self._fallback = fallback
        self._kinds = {
            (f"{kind.group}/{kind.version}", kind.kind): kind
            for kind in (KUSTOMIZATION, GIT_REPOSITORY)
        }

    def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        """The object, or None when it does not exist."""
        cached = self._kinds.get((api_version, kind))
        if cached is not None:
            return self._cache.get(cached, namespace, name)
        return self._fallback.get(api_version, kind, namespace, name)


class KustomizationController:
    """Reconcile one Kustomization through the pipeline and write the outcome."""

    def __init__(self, deps: Deps, writer: FluxWriter, metrics: Metrics | None = None) -> None:
        self._deps = replace(deps, progress=self._progress)
        self._writer, self._metrics = writer, metrics
        # The object as last written by each run's progress writes, by worker thread.
        self._latest = threading.local()

    def reconcile(self, obj: dict[str, Any]) -> float | None:
        """One run; the seconds until the next, or None."""
        self._latest.obj = obj
        outcome = reconcile_kustomization(obj, self._deps)
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        finalizers = [str(f) for f in meta.get("finalizers") or []]
        # The final status is diffed against the last one written, so nothing a progress
        # write added survives it.
        current: dict[str, Any] = self._latest.obj
        if outcome.finalizer is FinalizerChange.ADD and FINALIZER not in finalizers:
            current = self._finalizers(current, _with_finalizer)
        if outcome.status is not None:
            current = write_status(self._writer, current, outcome.status)
        if outcome.finalizer is FinalizerChange.REMOVE and FINALIZER in finalizers:
            self._finalizers(current, _without_finalizer)
        if self._metrics is not None:
            for change in outcome.changes:
                if change.action in _PRUNE_ACTIONS:
                    self._metrics.count_prune(KUSTOMIZATION.kind, namespace, name, change.action)
                else:
                    self._metrics.count_apply(KUSTOMIZATION.kind, namespace, name, change.action)
        return outcome.requeue_after

    def _progress(self, obj: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        # `Reconciling` shows while a long run goes on, written like the final status.
        self._latest.obj = write_status(self._writer, self._latest.obj, status)

    def deleted(self, namespace: str, name: str) -> None:
        """The object is gone: drop its metric series."""
        if self._metrics is not None:
            self._metrics.forget(KUSTOMIZATION.kind, namespace, name)

    def _finalizers(
        self, seen: Mapping[str, Any], change: Callable[[list[str]], list[str]]
    ) -> dict[str, Any]:
        """Write `change(finalizers)`, guarded by the resourceVersion of the object `seen`.

        On a conflict the object is read again and the change made on its finalizers.
        """
        obj = dict(seen)
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        for _ in range(_FINALIZER_ATTEMPTS):
            meta = obj.get("metadata") or {}
            present = [str(f) for f in meta.get("finalizers") or []]
            wanted = change(present)
            if wanted == present:
                return obj
            guarded = {"finalizers": wanted, "resourceVersion": meta.get("resourceVersion")}
            try:
                return self._writer.merge_patch(
                    KUSTOMIZATION, namespace, name, {"metadata": guarded}
                )
            except Conflict:
                obj = self._writer.get(KUSTOMIZATION, namespace, name)
        raise Conflict(
            f"Kustomization {namespace}/{name}: finalizers changed under every one of "
            f"{_FINALIZER_ATTEMPTS} attempts to write them"
        )


def _with_finalizer(finalizers: list[str]) -> list[str]:
    return finalizers if FINALIZER in finalizers else [*finalizers, FINALIZER]


def _without_finalizer(finalizers: list[str]) -> list[str]:
    return [f for f in finalizers if f != FINALIZER]
