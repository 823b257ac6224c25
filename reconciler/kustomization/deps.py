"""The seams one Kustomization reconcile needs, handed in by the loop: `Deps`.

The pipeline reads objects (`ObjectReader`: Kustomizations, sources, ConfigMaps, Secrets), gets
artifacts from an `ArtifactCache`, applies, prunes and health-checks through `Engines`, reports
through an `EventSink`, and reads time from a `Clock`. The loop builds one `Deps` for the
process and passes it to every call; tests pass fakes of these seams. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.changeset import ChangeSet
from reconciler.drift_ignore import IgnoreRule
from reconciler.health import ExprRules, HealthReport, ObjectRef
from reconciler.kustomization.model import ChangeEntry, InventoryEntry

if TYPE_CHECKING:
    from reconciler.kustomization.artifact import ArtifactCache

__all__ = [
    "Applied",
    "Clock",
    "Deps",
    "Engines",
    "EventSink",
    "ObjectReader",
    "Options",
    "Owner",
    "Pruned",
    "ReconcileObserver",
    "SystemClock",
]


class ObjectReader(Protocol):
    """Reads of single objects from the API server (uncached where Flux reads uncached)."""

    def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        """The object, or None when it does not exist; raise `TidegateError` on other errors."""


@dataclass(frozen=True)
class Owner:
    """The Kustomization that owns what is applied (Flux's ownership labels name it)."""

    name: str
    namespace: str


@dataclass(frozen=True)
class Applied:
    """What an apply did: the change set and the new inventory, or the error after a partial one."""

    changes: tuple[ChangeEntry, ...]
    inventory: tuple[InventoryEntry, ...]
    error: str | None = None
    """The apply failed (rejected object, RBAC denial); `changes` is what was done before."""
    change_set: ChangeSet | None = field(default=None, compare=False, repr=False)
    """The apply engine's own change set, handed back to prune, which refuses one that is not
    complete; None (an engine that keeps none) is never complete."""


@dataclass(frozen=True)
class Pruned:
    """What a prune did, the entries that could not be deleted, and the error if any."""

    changes: tuple[ChangeEntry, ...]
    survivors: tuple[InventoryEntry, ...] = ()
    error: str | None = None


class Engines(Protocol):
    """Apply, prune, health and deletion against the cluster, as one identity."""

    def apply(
        self,
        objects: Sequence[Any],
        *,
        owner: Owner,
        service_account: str | None,
        force: bool,
        ignore: Sequence[IgnoreRule] = (),
    ) -> Applied:
        """Server-side apply the build's cleartext objects in Flux's stages."""

    def prune(
        self,
        stale: Sequence[InventoryEntry],
        *,
        applied: Applied,
        owner: Owner,
        service_account: str | None,
    ) -> Pruned:
        """Delete the stale entries still carrying `owner`'s labels, if `applied` completed."""

    def wait(
        self,
        targets: Sequence[ObjectRef],
        *,
        rules: ExprRules,
        timeout: dt.timedelta,
        owner: Owner,
        service_account: str | None,
        gone_is_current: frozenset[ObjectRef] = frozenset(),
    ) -> HealthReport:
        """Wait for `targets` to be Current (`reconciler.health.HealthChecker`).

        `gone_is_current` are self-deleting Jobs: their absence is success.
        """

    def finalize(
        self,
        inventory: Sequence[InventoryEntry],
        *,
        owner: Owner,
        service_account: str | None,
        policy: str,
        prune_enabled: bool,
        suspended: bool,
        timeout: float,
    ) -> Pruned:
        """Delete what `deletionPolicy` says must go with the Kustomization."""


class EventSink(Protocol):
    """Where Flux-style events go.

    `reconciler.events.EventRecorder` (Kubernetes Events and the notifier's subscribers) is one.
    """

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
    ) -> object:
        """Record one event about `obj` (with its latest status); severity `info` or `error`."""


class ReconcileObserver(Protocol):
    """Told about each run's revision, start and end (deploy statuses, predicted vs applied).

    The pipeline calls `applying` once the artifact is known, then exactly one of `applied` or
    `failed` just before it records the run's final event, so the observer can annotate that
    event (it subscribes to the `EventSink`). A call must not block on the network.
    """

    def applying(self, obj: Mapping[str, Any], revision: str, tree: Path | None = None) -> None:
        """`revision` starts applying to `obj` (its status as it was before this run).

        `tree` is the unpacked artifact; it stays in place at least until the run ends.
        """

    def applied(
        self,
        obj: Mapping[str, Any],
        revision: str,
        *,
        changes: Sequence[ChangeEntry],
        seconds: float,
        healthy: bool,
    ) -> None:
        """The run succeeded; `changes` is what apply and prune did; `healthy`: checks passed."""

    def failed(self, obj: Mapping[str, Any], revision: str, reason: str, message: str) -> None:
        """The run failed with Flux's `reason` after the artifact was known."""


class Clock(Protocol):
    """Wall time for status timestamps, a monotonic clock for durations, randomness for jitter."""

    def now(self) -> dt.datetime:
        """The current UTC time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    def random(self) -> float:
        """A number in [0, 1) for jitter."""


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        """The current UTC time."""
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def random(self) -> float:
        """`random.random()`: jitter needs no cryptographic quality."""
        return random.random()  # noqa: S311


@dataclass(frozen=True)
class Options:
    """The controller's flags that change a reconcile (Flux's names and defaults)."""

    kustomize: Path
    """The pinned kustomize binary."""
    work_root: Path | None = None
    """Where builds and unpacked artifacts go (the temporary directory if None)."""
    default_service_account: str | None = None
    """`--default-service-account`: impersonated when a Kustomization names none."""
    no_cross_namespace_refs: bool = False
    """`--no-cross-namespace-refs`: a sourceRef in another namespace is AccessDenied."""
    requeue_dependency: float = 30.0
    """`--requeue-dependency`: retry delay for dependencies and missing artifacts."""
    jitter_percentage: float = 5.0
    """`--interval-jitter-percentage`."""


@dataclass(frozen=True)
class Deps:
    """Everything `reconcile_kustomization` needs from outside."""

    objects: ObjectReader
    artifacts: ArtifactCache
    """Unpacked artifacts by digest, over the source side's fetcher."""
    engines: Engines
    events: EventSink
    options: Options
    clock: Clock = field(default_factory=SystemClock)
    progress: Callable[[Mapping[str, Any], Mapping[str, Any]], None] | None = None
    """Called with (object, status) at each progress point, so `Reconciling` shows while a long
    run goes on; None skips the intermediate writes."""
    observer: ReconcileObserver | None = None
    """Told when a revision starts applying and how the run ended; None tells no one."""
