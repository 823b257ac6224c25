"""Leader election on a `coordination.k8s.io/v1` Lease, as controller-runtime does it for Flux.

Several replicas of the reconciler may run; only the one holding the Lease reconciles. The rules
(client-go's leaderelection, which Flux's controllers use):

- A Lease whose holder is someone else is respected while it is fresh: until `leaseDurationSeconds`
  have passed, on this replica's own clock, since this replica last saw the Lease change. Clocks
  of different machines are never compared.
- The holder renews every `retry_period`; if it cannot renew for `renew_deadline` it stops
  leading (the callback tells the loop to stop writing) and goes back to acquiring, so it can
  lead again later.
- Every write is a replace guarded by `resourceVersion`; losing the race (409) just means another
  replica wrote first. A new holder bumps `leaseTransitions` and sets `acquireTime`.
- On a clean stop the holder releases: it empties `holderIdentity` and shortens the lease to 1s,
  so a standby takes over at its next try instead of after a whole lease.

The Lease name is `tidegate-reconciler-leader-election`, suffixed with `-<first 8 hex of
sha256(selector)>` when the replica watches a label selector (as Flux names shard leases), so
each shard elects its own leader. This module does not reconcile anything and never logs; it
reports through its callbacks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.cluster.port import Conflict, NotFound

__all__ = ["LeaderElector", "LeaseStore", "Timing", "lease_name"]

BASE_NAME = "tidegate-reconciler-leader-election"


class LeaseStore(Protocol):
    """Reads and guarded writes of one namespace's Leases (`LiveCluster` is the real one)."""

    def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        """The Lease, or `NotFound`."""

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create; `Conflict` when it exists."""

    def replace_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace guarded by resourceVersion; `Conflict` when it moved."""


@dataclass(frozen=True)
class Timing:
    """Lease duration, renew deadline and retry period in seconds (Flux's defaults)."""

    lease_duration: float = 35.0
    renew_deadline: float = 30.0
    retry_period: float = 5.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period > 0, got "
                f"{self.lease_duration}, {self.renew_deadline}, {self.retry_period}"
            )


def lease_name(label_selector: str = "") -> str:
    """The Lease's name; each watch selector (shard) gets its own."""
    if not label_selector:
        return BASE_NAME
    digest = hashlib.sha256(label_selector.encode()).hexdigest()[:8]
    return f"{BASE_NAME}-{digest}"


class LeaderElector:
    """Acquire, renew and release one Lease for `identity`."""

    def __init__(
        self,
        store: LeaseStore,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._store, self._namespace, self._name = store, namespace, name
        self.identity = identity
        self.timing = timing or Timing()
        self._clock, self._wall = clock, wall
        self._observed: tuple[str, str] | None = None  # (resourceVersion, holder)
        self._observed_at = 0.0
        self._observed_duration = 0.0
        self._last_renew = 0.0
        self.leading = False

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds a fresh Lease afterwards."""
        now = self._wall()
        try:
            lease = self._store.get_lease(self._namespace, self._name)
        except NotFound:
            return self._write(self._store.create_lease, self._body(None, now, transitions=0))
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        version = lease["metadata"].get("resourceVersion", "")
        if self._observed != (version, holder):
            self._observed = (version, holder)
            self._observed_at = self._clock()
            self._observed_duration = float(spec.get("leaseDurationSeconds") or 0)
        fresh = self._clock() < self._observed_at + self._observed_duration
        if holder and holder != self.identity and fresh:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.identity:
            transitions += 1
            acquired = now
        else:
            acquired = _parse(spec.get("acquireTime")) or now
        body = self._body(lease["metadata"], now, transitions, acquired)
        return self._write(self._store.replace_lease, body)

    def release(self) -> None:
        """Give the Lease up now (only if this replica holds it)."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = self._store.get_lease(self._namespace, self._name)
        except NotFound:
            return
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": lease["metadata"],
            "spec": {
                **spec,
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "renewTime": _format(self._wall()),
            },
        }
        try:
            self._store.replace_lease(self._namespace, body)
        except Conflict:
            return

    def run(
        self,
        stop: threading.Event,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
    ) -> None:
        """Elect until `stop` is set: lead, lose, re-acquire; release the Lease on the way out."""
        try:
            while not stop.is_set():
                if self.try_acquire_or_renew():
                    self._last_renew = self._clock()
                    if not self.leading:
                        self.leading = True
                        on_started()
                elif (
                    self.leading and self._clock() - self._last_renew >= self.timing.renew_deadline
                ):
                    self.leading = False
                    on_stopped()
                stop.wait(self.timing.retry_period)
        finally:
            was_leading = self.leading
            self.release()
            if was_leading:
                on_stopped()

    def _write(
        self, call: Callable[[str, dict[str, Any]], dict[str, Any]], body: dict[str, Any]
    ) -> bool:
        try:
            written = call(self._namespace, body)
        except Conflict:
            return False
        spec = written.get("spec") or {}
        self._observed = (written["metadata"].get("resourceVersion", ""), self.identity)
        self._observed_at = self._clock()
        self._observed_duration = float(spec.get("leaseDurationSeconds") or 0)
        return True

    def _body(
        self,
        metadata: dict[str, Any] | None,
        now: dt.datetime,
        transitions: int,
        acquired: dt.datetime | None = None,
    ) -> dict[str, Any]:
        meta = dict(metadata) if metadata else {"name": self._name, "namespace": self._namespace}
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.timing.lease_duration)),
                "acquireTime": _format(acquired or now),
                "renewTime": _format(now),
                "leaseTransitions": transitions,
            },
        }


def _format(moment: dt.datetime) -> str:
    # MicroTime: RFC 3339 with microseconds, UTC.
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
