"""The informer cache: every watched Flux object, kept current by list + watch.

One `Informer` per kind lists once, then watches from the list's resourceVersion, resuming from
the last version it saw when a watch ends or breaks (server timeout, restarted apiserver) and
listing again when the apiserver answers 410 Gone. A relist is diffed against the cache, so
objects added, changed or deleted while the watch was down are reported like watched ones.
Every change reaches `on_change(old, new)` (old or new is None for an add or a delete).

`Cache` is what reconcile functions read instead of GETting objects: `get` and `list` return
deep copies, so a caller can never corrupt what the other workers see. `synced` is set once the
first list of every kind is in. This module does not decide what to reconcile and never writes.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from core.cluster.fluxobjects import FluxKind
from core.cluster.port import ClusterError
from core.cluster.watch import Gone, WatchEvent

__all__ = ["Cache", "Informer", "ListWatch", "OnChange", "key_of"]

log = logging.getLogger("tidegate.reconciler.informer")

Obj = dict[str, Any]
OnChange = Callable[[FluxKind, Obj | None, Obj | None], None]
Key = tuple[str, str]

# After a failed list or watch; short, because a restarted apiserver is back within seconds.
_RETRY_SECONDS = 1.0
_MAX_RETRY_SECONDS = 30.0


class ListWatch(Protocol):
    """What an informer needs from the cluster (`core.cluster.watch.Lister` is the real one)."""

    def list(
        self, kind: FluxKind, namespace: str | None, label_selector: str = ""
    ) -> tuple[list[Obj], str]:
        """Objects and the list's resourceVersion."""

    def watch(
        self,
        kind: FluxKind,
        namespace: str | None,
        resource_version: str,
        label_selector: str = "",
        timeout_seconds: int = 300,
    ) -> Any:
        """An iterator of `WatchEvent` after `resource_version`; `Gone` when it is too old."""

    def close(self) -> None:
        """End the open watches."""


def key_of(obj: Obj) -> Key:
    """(namespace, name) of an object."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class Cache:
    """The objects of every informed kind, by (namespace, name)."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, Obj]] = {}
        self._lock = threading.Lock()

    def get(self, kind: FluxKind, namespace: str, name: str) -> Obj | None:
        """A copy of the object, or None when it is not (or not yet) in the cache."""
        with self._lock:
            found = self._objects.get(kind.kind, {}).get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list(self, kind: FluxKind, namespace: str | None = None) -> list[Obj]:
        """Copies of the objects of `kind` (in `namespace`, or all)."""
        with self._lock:
            found = [
                obj
                for (space, _), obj in self._objects.get(kind.kind, {}).items()
                if namespace is None or space == namespace
            ]
            return copy.deepcopy(found)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(objects) for objects in self._objects.values())

    def store(self, kind: FluxKind, obj: Obj) -> Obj | None:
        """Put `obj` (the informer's call); return what it replaced."""
        with self._lock:
            objects = self._objects.setdefault(kind.kind, {})
            old = objects.get(key_of(obj))
            objects[key_of(obj)] = obj
            return old

    def remove(self, kind: FluxKind, key: Key) -> Obj | None:
        """Drop an object (the informer's call); return it."""
        with self._lock:
            return self._objects.get(kind.kind, {}).pop(key, None)

    def keys(self, kind: FluxKind) -> set[Key]:
        """The (namespace, name) keys of `kind`."""
        with self._lock:
            return set(self._objects.get(kind.kind, {}))


class Informer:
    """List + watch one kind into a `Cache`, reporting each change to `on_change`."""

    def __init__(
        self,
        source: ListWatch,
        cache: Cache,
        kind: FluxKind,
        on_change: OnChange,
        namespace: str | None = None,
        label_selector: str = "",
        watch_timeout: int = 300,
    ) -> None:
        self._source, self._cache, self.kind = source, cache, kind
        self._on_change = on_change
        self._namespace, self._selector = namespace, label_selector
        self._watch_timeout = watch_timeout
        self.synced = threading.Event()
        self.resource_version = ""
        self.lists = 0  # how many times this informer listed (the first list included)

    def run(self, stop: threading.Event) -> None:
        """Keep the cache current until `stop` is set."""
        delay = _RETRY_SECONDS
        while not stop.is_set():
            try:
                if not self.resource_version:
                    self._relist()
                self._watch(stop)
                delay = _RETRY_SECONDS
            except Gone as exc:
                log.info("watch expired, listing again", extra={"controllerKind": self.kind.kind})
                log.debug("gone: %s", exc)
                self.resource_version = ""
            except ClusterError as exc:
                # Resume from the version we have: the apiserver may be restarting.
                log.warning(
                    "list/watch failed, retrying in %.0fs",
                    delay,
                    exc_info=exc,
                    extra={"controllerKind": self.kind.kind},
                )
                stop.wait(delay)
                delay = min(delay * 2, _MAX_RETRY_SECONDS)

    def _relist(self) -> None:
        items, version = self._source.list(self.kind, self._namespace, self._selector)
        self.lists += 1
        seen: set[Key] = set()
        for obj in items:
            seen.add(key_of(obj))
            self._apply(WatchEvent("ADDED", obj))
        for key in self._cache.keys(self.kind) - seen:
            old = self._cache.remove(self.kind, key)
            if old is not None:
                self._on_change(self.kind, old, None)
        self.resource_version = version
        self.synced.set()

    def _watch(self, stop: threading.Event) -> None:
        events = self._source.watch(
            self.kind, self._namespace, self.resource_version, self._selector, self._watch_timeout
        )
        for event in events:
            if stop.is_set():
                return
            if event.type != "BOOKMARK":
                self._apply(event)
            if event.resource_version:
                self.resource_version = event.resource_version

    def _apply(self, event: WatchEvent) -> None:
        obj = event.object
        if event.type == "DELETED":
            old = self._cache.remove(self.kind, key_of(obj))
            if old is not None:
                self._on_change(self.kind, old, None)
            return
        # A relist reports every object again: unchanged ones (same resourceVersion) are not news.
        old = self._cache.store(self.kind, obj)
        if old is not None and _version(old) == _version(obj):
            return
        self._on_change(self.kind, old, obj)


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))
