"""Events about a Flux object, recorded as the Flux controller that owns its kind records them.

One `EventRecorder.record()` call makes one Flux event (`reconciler.notification.event.Event`,
the shape notification-controller receives) and hands it to every subscriber (the notifier,
commit statuses), and records it as a Kubernetes Event, the way Flux's recorder does:

- type `Normal` for `info`, `Warning` for `error`; reason the object's current Ready reason,
  else the severity; `source.component` and `reportingComponent` the recorder's controller:
  `kustomize-controller` (the default) for Kustomizations, `source-controller` for
  GitRepositories, as Flux names them;
- the event's metadata, keyed by the object's API group (`kustomize.toolkit.fluxcd.io/revision`,
  `.../originRevision`, and `.../commit_status: update` on success only), also as the
  Kubernetes Event's annotations;
- a repeat of an identical event (same object, type, reason and message) is not a new Event:
  the existing one's `count` and `lastTimestamp` are updated, as client-go's correlator does.

Messages must arrive Secret-free: the pipeline passes text built from masked objects and
object names; this module adds nothing but names, reasons and revisions. A subscriber that
raises, or an apiserver that refuses the Event, is logged and never stops the reconcile or the
other subscribers.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import TidegateError
from reconciler.notification.event import ERROR, INFO, Event, ObjectReference
from reconciler.status import go_duration

__all__ = [
    "CONTROLLER",
    "ERROR",
    "INFO",
    "SOURCE_CONTROLLER",
    "EventRecorder",
    "EventWriter",
    "Subscriber",
    "dependency_wait_message",
    "finished_message",
    "health_passed_message",
    "involved_object",
]

CONTROLLER = "kustomize-controller"
SOURCE_CONTROLLER = "source-controller"
_CACHE_SIZE = 4096  # client-go's event correlator keeps as many
_LOG = logging.getLogger(__name__)

Subscriber = Callable[[Event], object]
"""Receives every event (the notifier's `notify`, the commit-status reporter)."""


class EventWriter(Protocol):
    """Writes core/v1 Events (`core.cluster.fluxobjects.LiveCluster` is one)."""

    def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an Event."""
        ...

    def patch_event(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch an Event; raise `TidegateError` when it is gone."""
        ...


def finished_message(duration: datetime.timedelta, interval: datetime.timedelta) -> str:
    """The success event's message."""
    return (
        f"Reconciliation finished in {go_duration(duration)}, next run in {go_duration(interval)}"
    )


def health_passed_message(duration: datetime.timedelta) -> str:
    """The health recovery event's message."""
    return f"Health check passed in {go_duration(duration)}"


def dependency_wait_message(retry: datetime.timedelta) -> str:
    """The message while dependencies are not ready."""
    return f"Dependencies do not meet ready condition, retrying in {go_duration(retry)}"


def involved_object(obj: Mapping[str, Any]) -> ObjectReference:
    """The reference to `obj` that events carry."""
    metadata = obj.get("metadata") or {}
    return ObjectReference(
        kind=str(obj.get("kind", "")),
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        uid=str(metadata.get("uid", "")),
        api_version=str(obj.get("apiVersion", "")),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def _ready_reason(obj: Mapping[str, Any]) -> str:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("reason") or "")
    return ""


@dataclass(frozen=True)
class _Key:
    uid: str
    kind: str
    namespace: str
    name: str
    type: str
    reason: str
    message: str


class EventRecorder:
    """Records events for the reconciler; safe to share between workers."""

    def __init__(
        self,
        writer: EventWriter | None,
        subscribers: Sequence[Subscriber] = (),
        *,
        controller: str = CONTROLLER,
        instance: str = "",
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        """`writer` None records no Kubernetes Events (subscribers still get every event).

        `controller` is the reporting controller every event names.
        """
        self._writer = writer
        self._controller = controller
        self._subscribers = list(subscribers)
        self._instance = instance
        self._clock = clock
        self._seen: OrderedDict[_Key, tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Add a subscriber; it receives every event recorded from now on."""
        with self._lock:
            self._subscribers.append(subscriber)

    def record(
        self,
        obj: Mapping[str, Any],
        severity: str,
        message: str,
        *,
        revision: str = "",
        origin_revision: str = "",
        commit_status: bool = False,
        reason: str = "",
    ) -> Event:
        """Record one event about `obj` (the object with its latest status) and return it.

        `reason` defaults to Flux's choice: the object's Ready reason, else the severity.
        """
        group = involved_object(obj).group
        metadata: dict[str, str] = {}
        if revision:
            metadata[f"{group}/revision"] = revision
        if origin_revision:
            metadata[f"{group}/originRevision"] = origin_revision
        if commit_status:
            metadata[f"{group}/commit_status"] = "update"
        return self._emit(obj, severity, reason, message, metadata)

    def event(
        self,
        obj: Mapping[str, Any],
        *,
        severity: str,
        reason: str,
        message: str,
        metadata: Mapping[str, str],
    ) -> None:
        """Record one event whose metadata the caller built (the pipeline's event sink)."""
        self._emit(obj, severity, reason, message, metadata)

    def _emit(
        self,
        obj: Mapping[str, Any],
        severity: str,
        reason: str,
        message: str,
        metadata: Mapping[str, str],
    ) -> Event:
        if severity not in (INFO, ERROR):
            raise ValueError(f"severity must be {INFO!r} or {ERROR!r}, not {severity!r}")
        involved = involved_object(obj)
        now = self._clock()
        event = Event(
            involved_object=involved,
            severity=severity,
            timestamp=now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            message=message,
            reason=reason or _ready_reason(obj) or severity,
            reporting_controller=self._controller,
            metadata=dict(metadata),
            reporting_instance=self._instance,
        )
        if self._writer is not None:
            self._write(self._writer, event, now)
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # one subscriber's defect must not stop the reconcile
                _LOG.exception("event subscriber %r failed", subscriber)
        return event

    def _write(self, writer: EventWriter, event: Event, now: datetime.datetime) -> None:
        involved = event.involved_object
        kind = "Warning" if event.severity == ERROR else "Normal"
        key = _Key(
            involved.uid,
            involved.kind,
            involved.namespace,
            involved.name,
            kind,
            event.reason,
            event.message,
        )
        stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            seen = self._seen.get(key)
        try:
            if seen is not None:
                name, count = seen
                try:
                    writer.patch_event(
                        involved.namespace, name, {"count": count + 1, "lastTimestamp": stamp}
                    )
                    self._remember(key, name, count + 1)
                    return
                except TidegateError:
                    pass  # expired or deleted: record it afresh
            body = self._body(event, kind, stamp, now)
            writer.create_event(involved.namespace, body)
            self._remember(key, body["metadata"]["name"], 1)
        except TidegateError as exc:
            _LOG.warning("cannot record event for %s: %s", involved.name, exc)

    def _remember(self, key: _Key, name: str, count: int) -> None:
        with self._lock:
            self._seen[key] = (name, count)
            self._seen.move_to_end(key)
            while len(self._seen) > _CACHE_SIZE:
                self._seen.popitem(last=False)

    def _body(self, event: Event, kind: str, stamp: str, now: datetime.datetime) -> dict[str, Any]:
        involved = event.involved_object
        # client-go names an Event after its object and the time in hexadecimal nanoseconds.
        nanos = int(now.timestamp() * 1_000_000) * 1000
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved.name}.{nanos:x}",
                "namespace": involved.namespace,
                "annotations": dict(event.metadata),
            },
            "involvedObject": involved.to_wire(),
            "reason": event.reason,
            "message": event.message,
            "type": kind,
            "source": {"component": self._controller},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self._controller,
            "reportingInstance": self._instance,
        }
