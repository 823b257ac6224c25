"""The vocabulary the Kustomization steps share: Flux's reasons, a step's failure, the outcome.

`StepFailed` carries Flux's condition reason (`reconciler.status.Reason`) and a message
that is already safe to show; `Outcome` is what one reconcile hands back to the loop: the status
to write, the finalizer change and when to run again. Data only: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler import status

__all__ = [
    "ChangeEntry",
    "FinalizerChange",
    "InventoryEntry",
    "Outcome",
    "Reason",
    "StepFailed",
]

Reason = status.Reason

FINALIZER = "finalizers.fluxcd.io"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


class StepFailed(Exception):  # noqa: N818 - a step's result, read as "the step failed"
    """A step could not finish; `message` is safe to write into a condition or an event."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        terminal: bool = False,
        requeue_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.terminal = terminal
        """A configuration error that retrying cannot fix: Stalled, no requeue (also for reasons
        Flux retries, such as a dependsOn cycle reported as DependencyNotReady)."""
        self.requeue_after = requeue_after
        """Overrides retryInterval (Flux retries dependencies and missing artifacts sooner)."""


@dataclass(frozen=True, order=True)
class InventoryEntry:
    """One `status.inventory.entries[]` item: `<ns>_<name>_<group>_<kind>` and the version."""

    id: str
    v: str

    def as_status(self) -> dict[str, str]:
        """The entry as Flux writes it."""
        return {"id": self.id, "v": self.v}


@dataclass(frozen=True)
class ChangeEntry:
    """One line of a change set: `Deployment/apps/podinfo` and what happened to it."""

    subject: str
    action: str
    """created, configured, unchanged, deleted, skipped or unknown (Flux's words)."""

    def __str__(self) -> str:
        return f"{self.subject} {self.action}"


class FinalizerChange(StrEnum):
    """What the loop must do to `metadata.finalizers` before writing the status."""

    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True)
class Outcome:
    """What one reconcile of one Kustomization asks the loop to write, and when to come back."""

    status: Mapping[str, Any] | None
    """The whole new `status` (written to the status subresource); None: write nothing."""
    requeue_after: float | None
    """Seconds until the next run (jitter included); None: only on the next change."""
    finalizer: FinalizerChange | None = None
    ready: bool = False
    reason: str = ""
    message: str = ""
    changes: tuple[ChangeEntry, ...] = field(default=())
    """The apply and prune change set of this run (empty when nothing ran)."""
