"""Deploy statuses: the events a Kustomization's reconcile sends so its commit shows each step.

`DeployReporter` is the reconcile observer the pipeline calls: `applying` when a revision starts
applying, then `applied` or `failed`. Each builds the event Flux's kustomize-controller sends at
that point (same reason, message, severity and group-prefixed metadata `revision` and
`commit_status`), adds the status description Tidegate wants on the commit, and hands it to the
event sink (the `Notifier`), which only queues: a code-host outage never slows the reconcile.

- applying: reason `Progressing`, metadata `commit_status: pending`, description
  `applying to <cluster>/<kustomization>`; Flux's own notifier skips `Progressing` events, so
  nothing changes for a Flux notification-controller receiving it;
- applied: reason `ReconciliationSucceeded`, message `Reconciliation finished in <d>, next run in
  <interval>`, `commit_status: update`, description `applied in 14s, healthy` plus, when the
  preview was compared, `; applied as previewed` or `; applied with N differences`, whose
  details go to the commit as a comment (names and actions only);
- failed: severity error with Flux's reason, description `<reason in words>: <first line of the
  message>`.

Statuses go to the commit the artifact was built from: the revision (`main@sha1:<hex>`) must
name one, or nothing is sent. Mismatches are counted in `tidegate_predicted_mismatch_total`.
This module does not apply, compare or talk to a code host itself.
"""

from __future__ import annotations

import datetime
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from core.model import UnitKind, UnitRef
from core.predicted import Comparison
from core.report.predicted import comparison_markdown
from reconciler.notification.commit_status import DESCRIPTION_KEY, PENDING, description_of
from reconciler.notification.event import ERROR, INFO, Event, ObjectReference

__all__ = ["DeployReporter", "EventSink", "Kustomization", "go_duration", "sha_of"]

GROUP = "kustomize.toolkit.fluxcd.io"
_CONTROLLER = "kustomize-controller"
_SHA = re.compile(r"(?:sha1:[0-9a-f]{40}|sha256:[0-9a-f]{64})")
_MESSAGE = 100
"""Characters of a failure message kept in the status description."""


class EventSink(Protocol):
    """Where events go: the process's `Notifier.notify`."""

    def __call__(self, event: Event, *, details: str = "") -> object:
        """Queue `event`; `details` is Markdown for commit-status Providers only."""


def sha_of(revision: str) -> str | None:
    """The commit hash of a source revision (`main@sha1:<hex>`, `sha1:<hex>`), else None.

    Only the current form is accepted: a status must land on the exact commit applied, so a
    revision that does not name one sets nothing rather than a status on a guess.
    """
    digest = revision.rpartition("@")[2]
    return digest.partition(":")[2] if _SHA.fullmatch(digest) else None


def go_duration(seconds: float) -> str:
    """A duration as Go prints a rounded `time.Duration`: `14s`, `1m5s`, `2h0m0s`, `350ms`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass(frozen=True)
class Kustomization:
    """The object a reconcile is about."""

    namespace: str
    name: str
    uid: str = ""
    interval: str = "10m0s"
    """`spec.interval` as Go prints it, for Flux's success message."""

    @property
    def reference(self) -> ObjectReference:
        """The involved object of its events."""
        return ObjectReference(
            kind="Kustomization",
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
            api_version=f"{GROUP}/v1",
        )

    @property
    def unit(self) -> UnitRef:
        """Its identity in a preview."""
        return UnitRef(UnitKind.KUSTOMIZATION, self.namespace, self.name)


class DeployReporter:
    """The reconcile observer that reports each step of a revision to its commit."""

    def __init__(
        self,
        sink: EventSink,
        *,
        cluster: str = "",
        registry: CollectorRegistry | None = None,
        now: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        """`cluster` names this cluster in descriptions; `registry` receives the counter."""
        self._sink = sink
        self._cluster = cluster
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self._instance = socket.gethostname()
        self.mismatches = Counter(
            "tidegate_predicted_mismatch",
            "Applies whose change set differed from the preview of the same revision.",
            ("namespace", "name"),
            registry=registry,
        )

    def applying(self, ks: Kustomization, revision: str) -> bool:
        """A revision starts applying: a pending status. False when the revision names no commit."""
        where = f"{self._cluster}/{ks.name}" if self._cluster else f"{ks.namespace}/{ks.name}"
        return self._emit(
            ks,
            revision,
            INFO,
            "Progressing",
            f"Applying revision {revision}",
            PENDING,
            f"applying to {where}",
        )

    def applied(
        self,
        ks: Kustomization,
        revision: str,
        seconds: float,
        *,
        healthy: bool | None,
        comparison: Comparison | None = None,
    ) -> bool:
        """The revision applied (and, when checked, is healthy): a success status."""
        took = go_duration(seconds)
        description = f"applied in {took}"
        if healthy:
            description += ", healthy"
        details = ""
        if comparison is not None:
            description += f"; {comparison.headline}"
            if not comparison.matched:
                self.mismatches.labels(ks.namespace, ks.name).inc()
                details = comparison_markdown(comparison, ks.unit, revision, cluster=self._cluster)
        message = f"Reconciliation finished in {took}, next run in {ks.interval}"
        return self._emit(
            ks,
            revision,
            INFO,
            "ReconciliationSucceeded",
            message,
            "update",
            description,
            details,
        )

    def failed(self, ks: Kustomization, revision: str, reason: str, message: str) -> bool:
        """The revision failed with Flux's `reason`: a failure status."""
        first = message.strip().splitlines()[0] if message.strip() else ""
        if len(first) > _MESSAGE:
            first = first[: _MESSAGE - 1] + "…"
        description = description_of(reason) + (f": {first}" if first else "")
        return self._emit(ks, revision, ERROR, reason, message, "", description)

    def _emit(
        self,
        ks: Kustomization,
        revision: str,
        severity: str,
        reason: str,
        message: str,
        commit_status: str,
        description: str,
        details: str = "",
    ) -> bool:
        if sha_of(revision) is None:
            return False
        metadata = {f"{GROUP}/revision": revision, f"{GROUP}/{DESCRIPTION_KEY}": description}
        if commit_status:
            metadata[f"{GROUP}/commit_status"] = commit_status
        event = Event(
            involved_object=ks.reference,
            severity=severity,
            timestamp=self._now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            message=message,
            reason=reason,
            reporting_controller=_CONTROLLER,
            metadata=metadata,
            reporting_instance=self._instance,
        )
        self._sink(event, details=details)
        return True
