"""The reconcile loop: informers feed a work queue that a pool of workers drains.

`Loop.run(stop)` starts one informer per controller's kind (plus the kinds they watch), waits
until every cache is synced, then runs `concurrent` workers (Flux's `--concurrent`). A worker
takes one object key at a time (the queue never hands the same key to two workers), reads the
object from the cache and calls its controller's `reconcile(obj)`:

- it returns the seconds after which to reconcile again (spread by the jitter percentage, as
  Flux's `--interval-jitter-percentage`), or None for "only on the next change";
- it raises: the error is logged and the key is retried with exponential backoff; a run
  `CancelledError` by shutdown is logged as such and not retried (the next process reconciles it);
- the object is gone from the cache: the controller's `deleted(namespace, name)` runs instead.

What enqueues a key (Flux's predicates): an add; a change of `metadata.generation`, of the
`reconcile.fluxcd.io/requestedAt` annotation or of `metadata.deletionTimestamp`; a delete; and
each `Watch` a controller declares (a GitRepository's new artifact revision enqueues the
Kustomizations whose `sourceRef` names it). Status-only updates, such as those the reconcile
itself writes, enqueue nothing, so a reconcile never triggers itself.

Sharding (`label_selector`, Flux's `--watch-label-selector`) narrows what this process
reconciles, at the depth Flux applies it: kustomize-controller's cache filters the
Kustomizations it reconciles but watches their sources whole, and source-controller (run with the
same selector) reconciles only the sources it selects. So a kind that only its own controller
reads (Kustomization) is listed and watched with the selector; a kind another controller watches
(GitRepository, the Kustomizations' source) is informed whole, so a shard's Kustomization finds
an unlabelled source and hears of its new artifacts, and its own controller reconciles only the
objects the selector matches, checked on the cached labels.

On stop the queue is shut, each worker finishes the reconcile it is in (so no status is left
half-written) and the watches are closed. This module holds no reconcile logic and makes no
per-object reads: everything a worker hands over comes from the cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.cluster.fluxobjects import FluxKind
from reconciler import label_selector as selectors
from reconciler.cancellation import CancelledError
from reconciler.informer import Cache, Informer, ListWatch
from reconciler.metrics import Metrics
from reconciler.workqueue import Backoff, WorkQueue, jittered

__all__ = ["Controller", "Loop", "ObjectRef", "Reconcile", "Watch"]

log = logging.getLogger("tidegate.reconciler.loop")

Obj = dict[str, Any]
Reconcile = Callable[[Obj], float | None]
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


@dataclass(frozen=True)
class ObjectRef:
    """One object to reconcile: the queue's key."""

    kind: FluxKind
    namespace: str
    name: str


@dataclass(frozen=True)
class Watch:
    """Reconcile objects of the controller's kind when an object of `kind` changes.

    `changed(old, new)` says whether the change matters; `dependents(obj, cache)` names the
    objects (of the controller's kind) to enqueue.
    """

    kind: FluxKind
    changed: Callable[[Obj | None, Obj | None], bool]
    dependents: Callable[[Obj, Cache], list[tuple[str, str]]]


@dataclass(frozen=True)
class Controller:
    """The reconcile function of one kind, and what else it watches."""

    kind: FluxKind
    reconcile: Reconcile
    deleted: Callable[[str, str], None] = lambda namespace, name: None
    watches: Sequence[Watch] = field(default_factory=tuple)
    jitter: bool = True
    """Spread the returned delays by the loop's jitter (False when `reconcile` already does)."""


class Loop:
    """Informers, one work queue and a worker pool for a set of controllers."""

    def __init__(
        self,
        source: ListWatch,
        controllers: Sequence[Controller],
        *,
        concurrent: int = 4,
        namespace: str | None = None,
        label_selector: str = "",
        jitter_percentage: float = 5.0,
        backoff: Backoff[ObjectRef] | None = None,
        metrics: Metrics | None = None,
        cache: Cache | None = None,
        watch_timeout: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrent < 1:
            raise ValueError(f"--concurrent must be at least 1, got {concurrent}")
        self.cache = cache if cache is not None else Cache()
        self.queue: WorkQueue[ObjectRef] = WorkQueue(backoff or Backoff())
        self._source = source
        self._controllers = {c.kind.kind: c for c in controllers}
        self._concurrent = concurrent
        self._jitter = jitter_percentage
        self._metrics = metrics
        self._clock = clock
        kinds = {c.kind.kind: c.kind for c in controllers}
        watched = {w.kind.kind for c in controllers for w in c.watches}
        for controller in controllers:
            for watch in controller.watches:
                kinds.setdefault(watch.kind.kind, watch.kind)
        self._selector = selectors.parse(label_selector)
        # Kinds informed whole although a controller of ours reconciles them: filtered here.
        self._filtered_locally = frozenset(
            kind for kind in self._controllers if kind in watched and label_selector
        )
        self.informers = [
            Informer(
                source,
                self.cache,
                kind,
                self._on_change,
                namespace=namespace,
                label_selector="" if kind.kind in watched else label_selector,
                watch_timeout=watch_timeout,
            )
            for kind in kinds.values()
        ]
        self.reconciles = 0  # reconcile calls made (for the benchmark and tests)
        self._count_lock = threading.Lock()

    def synced(self) -> bool:
        """Whether every informer has listed at least once."""
        return all(informer.synced.is_set() for informer in self.informers)

    def run(self, stop: threading.Event) -> None:
        """Inform and reconcile until `stop` is set, then finish in-flight work and return.

        It may run again (leadership regained): the queue starts afresh and every cached
        object is reconciled once more, as a new leader must.
        """
        self.queue = WorkQueue(self.queue.backoff)
        informer_stop = threading.Event()
        informers = [
            threading.Thread(
                target=informer.run,
                args=(informer_stop,),
                name=f"informer-{informer.kind.kind}",
                daemon=True,
            )
            for informer in self.informers
        ]
        for thread in informers:
            thread.start()
        while not stop.is_set() and not self.synced():
            stop.wait(0.05)
        workers = [
            threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            for i in range(self._concurrent)
        ]
        started = not stop.is_set()
        # A first run enqueues every object through the informers' adds; a later run finds
        # them already cached, so they are enqueued here.
        for controller in self._controllers.values():
            for obj in self.cache.list(controller.kind):
                if self._selected(controller.kind, obj):
                    namespace, name = _name(obj)
                    self.queue.add(ObjectRef(controller.kind, namespace, name))
        if started:
            log.info("caches synced, starting %d workers", self._concurrent)
            for thread in workers:
                thread.start()
        stop.wait()
        self.queue.shut_down()
        # Each worker returns after the reconcile it is in: a status write is never cut short.
        for thread in workers if started else ():
            thread.join()
        informer_stop.set()
        self._source.close()
        for thread in informers:
            thread.join(timeout=10)

    # -- events --------------------------------------------------------------------------------

    def _on_change(self, kind: FluxKind, old: Obj | None, new: Obj | None) -> None:
        if self._metrics is not None:
            self._record(self._metrics, kind, old, new)
        controller = self._controllers.get(kind.kind)
        if controller is not None and _triggers(old, new) and self._selected(kind, new or old):
            namespace, name = _name(new if new is not None else old)
            self.queue.add(ObjectRef(kind, namespace, name))
        for dependent in self._controllers.values():
            for watch in dependent.watches:
                if watch.kind.kind != kind.kind or not watch.changed(old, new):
                    continue
                changed = new if new is not None else old
                for namespace, name in watch.dependents(changed or {}, self.cache):
                    self.queue.add(ObjectRef(dependent.kind, namespace, name))

    def _selected(self, kind: FluxKind, obj: Obj | None) -> bool:
        """Whether this process reconciles `obj` (the informer's selector already did, or not)."""
        if kind.kind not in self._filtered_locally:
            return True
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return self._selector.matches({str(k): str(v) for k, v in labels.items()})

    def _record(self, metrics: Metrics, kind: FluxKind, old: Obj | None, new: Obj | None) -> None:
        # The cache sees every status the reconcile writes: the state gauge follows it.
        if kind.kind not in self._controllers:
            return
        if new is not None and self._selected(kind, new):
            metrics.record_state(new)
        elif old is not None:
            # Gone, or relabelled out of this shard: another replica reports it now.
            namespace, name = _name(old)
            metrics.forget(kind.kind, namespace, name)

    # -- workers -------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            ref = self.queue.get()
            if ref is None:
                return
            try:
                self._process(ref)
            finally:
                self.queue.done(ref)

    def _process(self, ref: ObjectRef) -> None:
        controller = self._controllers[ref.kind.kind]
        obj = self.cache.get(ref.kind, ref.namespace, ref.name)
        context = {
            "controllerKind": ref.kind.kind,
            "objectName": ref.name,
            "objectNamespace": ref.namespace,
        }
        if obj is None:
            self.queue.forget(ref)
            controller.deleted(ref.namespace, ref.name)
            return
        if not self._selected(ref.kind, obj):  # relabelled out of this shard since enqueued
            self.queue.forget(ref)
            return
        started = self._clock()
        with self._count_lock:
            self.reconciles += 1
        try:
            after = controller.reconcile(obj)
        except CancelledError as exc:
            log.info("Reconcile cancelled: %s", exc, extra=context)
        except Exception as exc:  # any failure of one object must not stop the loop
            delay = self.queue.add_rate_limited(ref)
            log.error("Reconciler error, retrying in %.1fs", delay, exc_info=exc, extra=context)
        else:
            self.queue.forget(ref)
            if after is not None:
                spread = jittered(after, self._jitter) if controller.jitter else after
                self.queue.add_after(ref, spread)
        finally:
            if self._metrics is not None:
                self._metrics.observe(
                    ref.kind.kind, ref.namespace, ref.name, self._clock() - started
                )


def _triggers(old: Obj | None, new: Obj | None) -> bool:
    """Flux's predicates: generation, requestedAt or deletion changed (or add / delete)."""
    if old is None or new is None:
        return True
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    return (
        before.get("generation") != after.get("generation")
        or (before.get("annotations") or {}).get(REQUESTED_AT)
        != (after.get("annotations") or {}).get(REQUESTED_AT)
        or before.get("deletionTimestamp") != after.get("deletionTimestamp")
    )


def _name(obj: Obj | None) -> tuple[str, str]:
    meta = (obj or {}).get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))
