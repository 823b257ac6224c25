"""The reconciler's Prometheus metrics under Flux's names, and the probe/metrics HTTP endpoint.

- `gotk_reconcile_duration_seconds{kind,name,namespace}`: histogram with Flux's buckets
  (`ExponentialBucketsRange(0.01, 1800, 10)`), observed once per reconcile run, the only
  per-object metric kustomize-controller records;
- `gotk_resource_info{customresource_group,customresource_kind,customresource_version,
  exported_namespace,name,ready,reason,revision,source_name,suspended}` = 1: the series Flux's
  kube-state-metrics configuration produces, so Flux's dashboards and alerts work without it;
- `tidegate_applied_objects_total{kind,name,namespace,action}` and
  `tidegate_pruned_objects_total{kind,name,namespace,action}`: what apply and prune did.

Series of a deleted object are removed with `forget`. `/healthz` answers 200 while the process
serves; `/readyz` answers 200 only when the caller's readiness check passes. Labels carry object
names and status words only, never a spec or data value, so no Secret can leak through here.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics", "MetricsServer", "flux_buckets"]

_OBJECT = ("kind", "name", "namespace")
_INFO = (
    "customresource_group",
    "customresource_kind",
    "customresource_version",
    "exported_namespace",
    "name",
    "ready",
    "reason",
    "revision",
    "source_name",
    "suspended",
)


def flux_buckets(low: float = 0.01, high: float = 1800.0, count: int = 10) -> list[float]:
    """Prometheus Go client's ExponentialBucketsRange: `count` buckets from `low` to `high`."""
    factor = (high / low) ** (1.0 / (count - 1))
    return [low * factor**i for i in range(count)]


class Metrics:
    """One registry holding the reconciler's series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "gotk_reconcile_duration_seconds",
            "The duration in seconds of a GitOps Toolkit resource reconciliation.",
            _OBJECT,
            buckets=flux_buckets(),
            registry=self.registry,
        )
        self.info = Gauge(
            "gotk_resource_info",
            "The current state of a Flux resource.",
            _INFO,
            registry=self.registry,
        )
        self.applied = Counter(
            "tidegate_applied_objects",
            "Objects server-side applied, by the action apply took.",
            (*_OBJECT, "action"),
            registry=self.registry,
        )
        self.pruned = Counter(
            "tidegate_pruned_objects",
            "Inventory objects garbage-collected, by the action prune took.",
            (*_OBJECT, "action"),
            registry=self.registry,
        )
        self._info_labels: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def observe(self, kind: str, namespace: str, name: str, seconds: float) -> None:
        """Record one reconcile run's duration."""
        self.duration.labels(kind, name, namespace).observe(seconds)

    def record_state(self, obj: dict[str, Any]) -> None:
        """Set `gotk_resource_info` for a Flux object, replacing its previous series."""
        meta = obj.get("metadata") or {}
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        status = obj.get("status") or {}
        conditions: list[dict[str, Any]] = status.get("conditions") or []
        ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
        revision = status.get("lastAppliedRevision") or (status.get("artifact") or {}).get(
            "revision", ""
        )
        labels = (
            group,
            str(obj.get("kind", "")),
            version,
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
            str(ready.get("status", "Unknown")),
            str(ready.get("reason", "")),
            str(revision),
            str(((obj.get("spec") or {}).get("sourceRef") or {}).get("name", "")),
            "true" if (obj.get("spec") or {}).get("suspend") is True else "false",
        )
        key = (labels[1], labels[3], labels[4])
        with self._lock:
            previous = self._info_labels.get(key)
            if previous is not None and previous != labels:
                self.info.remove(*previous)
            self._info_labels[key] = labels
            self.info.labels(*labels).set(1)

    def count_apply(self, kind: str, namespace: str, name: str, action: str) -> None:
        """Count one object's apply action (created, configured, unchanged, skipped)."""
        self.applied.labels(kind, name, namespace, action).inc()

    def count_prune(self, kind: str, namespace: str, name: str, action: str) -> None:
        """Count one inventory object's prune action (deleted, skipped)."""
        self.pruned.labels(kind, name, namespace, action).inc()

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop every series of a deleted object, as Flux deletes its duration series."""
        with self._lock:
            labels = self._info_labels.pop((kind, namespace, name), None)
            if labels is not None:
                self.info.remove(*labels)
        with contextlib.suppress(KeyError):
            self.duration.remove(kind, name, namespace)
        for counter in (self.applied, self.pruned):
            for action in ("created", "configured", "unchanged", "skipped", "deleted"):
                try:
                    counter.remove(kind, name, namespace, action)
                except KeyError:
                    continue

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)


class MetricsServer:
    """`/metrics`, `/healthz` and `/readyz` on one address, served from a daemon thread."""

    def __init__(
        self,
        metrics: Metrics,
        ready: Callable[[], bool],
        host: str = "0.0.0.0",  # noqa: S104 - a pod serves its probes on its own address
        port: int = 8080,
    ) -> None:
        handler = _handler(metrics, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _handler(metrics: Metrics, ready: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._send(200, b"ok", "text/plain")
            elif self.path == "/readyz":
                ok = ready()
                self._send(200 if ok else 503, b"ok" if ok else b"not ready", "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Probes every few seconds would flood the JSON log; requests are not logged.
            return

    return Handler
