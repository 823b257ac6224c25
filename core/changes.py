"""The change-set vocabulary: what a merge does to each cluster, unit and object.

These types are the engine's output and the JSON contract's shape (see `core.report.jsonout`).
They hold data only; planning lives in `core.plan`, formatting in `core.report`.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.errors import Failure
from core.model import Manifest, ObjectRef, UnitRef
from core.units import SourceRef

__all__ = [
    "Action",
    "Change",
    "ClusterPlan",
    "Preview",
    "UnitPlan",
    "UnitStatus",
]


class Action(enum.StrEnum):
    """What happens to one object when the merge is reconciled."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    """No longer rendered and its owner prunes: Flux garbage-collects it."""
    ORPHAN = "orphan"
    """No longer rendered but its owner does not prune it: it stays, unmanaged."""
    MOVE = "move"
    """Leaves one unit and appears under another: Flux may delete and re-create it."""
    UNKNOWN = "unknown"
    """Appears or disappears while a unit it may move from or to failed on the other side:
    whether Flux creates (deletes) it or moves it cannot be told."""


class UnitStatus(enum.StrEnum):
    """What happened to a unit as a whole."""

    RENDERED = "rendered"
    """Rendered on both sides, with object changes."""
    UNCHANGED = "unchanged"
    FAILED = "failed"
    """Could not be rendered on one side; its objects are withheld, never shown as deleted."""
    ADDED = "added"
    REMOVED = "removed"
    UNAVAILABLE = "unavailable"
    """Not previewed because a source (a chart repository) could not be reached on one side;
    its objects are withheld like a failed unit's. It fails the preview unless the preview was
    asked to skip unavailable sources."""


_FAILING = frozenset({UnitStatus.FAILED, UnitStatus.UNAVAILABLE})


@dataclass(frozen=True)
class Change:
    """One object's change."""

    action: Action
    ref: ObjectRef
    api_version: str
    moved_from: UnitRef | None = None
    """For `move`: the unit the object leaves."""
    fields: tuple[str, ...] = ()
    """Changed field paths for `update`, such as `spec.replicas`."""
    diff: str = ""
    """Unified YAML diff of the normalized, masked object."""
    suppressed: Mapping[str, int] = field(default_factory=dict)
    """Diff lines hidden by each noise rule, by rule name."""
    note: str | None = None
    """What Flux will do differently from what the action alone says, in a sentence."""
    before: Manifest | None = field(default=None, compare=False, repr=False)
    """The masked object at base (for a move: under the unit it leaves); None for `create`.

    Policies read bodies from here instead of re-reading renders. Not part of the JSON output,
    and not compared: two changes are equal when what they say is equal."""
    after: Manifest | None = field(default=None, compare=False, repr=False)
    """The masked object at head; None for `delete` and `orphan`."""

    @property
    def source(self) -> str | None:
        """Repository file the object comes from (head first), when known."""
        for manifest in (self.after, self.before):
            if manifest is not None and manifest.source:
                return manifest.source
        return None


@dataclass(frozen=True)
class UnitPlan:
    """The changes one unit makes."""

    unit: UnitRef
    status: UnitStatus
    prune: bool
    changes: tuple[Change, ...] = ()
    error: str | None = None
    reason: Failure | None = None
    """The type of `error`: the failed render's own (head first), or `withheld` when the unit
    rendered but cannot be planned because something it rests on failed."""
    suspended: bool = False
    """A suspended unit applies nothing until resumed; its changes are shown but flagged."""
    path: str | None = None
    """Source path of a Kustomization, or chart of a HelmRelease, for display."""
    parent: UnitRef | None = None
    """The unit that renders this unit's own Flux object, if any."""
    skipped: int = 0
    """Changed objects Flux will not apply or prune (`kustomize.toolkit.fluxcd.io/reconcile:
    disabled`, `kustomize.toolkit.fluxcd.io/ssa: Ignore`)."""
    noise_only: int = 0
    """Objects rendered on both sides whose only differences were hidden by noise rules."""
    noise_only_suppressed: Mapping[str, int] = field(default_factory=dict)
    """Diff lines hidden per rule on those objects."""
    note: str | None = None
    """Why a removed unit's objects are deleted or left, in a sentence."""
    notices: tuple[str, ...] = ()
    """What the changes alone do not say, one sentence each: a change Flux will not make (a
    chart CRD that helm-controller's CRD policy leaves alone, also counted in `skipped`), or a
    kind whose scope is unknown."""
    unavailable_source: str | None = None
    """For `unavailable`: the URL that could not be reached (the reason is in `error`)."""
    depends_on: tuple[UnitRef, ...] = ()
    """The unit's `dependsOn` (head, or base for a removed unit): the owner graph's edges."""
    source: SourceRef | None = None
    """The Flux source the unit renders from."""
    file: str | None = None
    """Repository file that defines the unit's Flux object, when known."""
    deletion_policy: str = "MirrorPrune"
    """`spec.deletionPolicy` of a Kustomization (base for a removed unit): what its finalizer
    does with its objects when the Kustomization itself is deleted."""

    @property
    def suppressed(self) -> Counter[str]:
        """Diff lines hidden per noise rule, over the changes and the noise-only objects."""
        if not self.changes and not self.noise_only_suppressed:
            return Counter()  # most units of a fleet: nothing to count
        total: Counter[str] = Counter(self.noise_only_suppressed)
        for change in self.changes:
            total.update(change.suppressed)
        return total


@dataclass(frozen=True)
class ClusterPlan:
    """The changes in one cluster entry point (for example `clusters/production`)."""

    path: str
    units: tuple[UnitPlan, ...]
    errors: tuple[str, ...] = ()
    """Cluster-level problems (for example a `dependsOn` cycle), in addition to failed units."""
    duplicates: Mapping[ObjectRef, tuple[UnitRef, ...]] = field(default_factory=dict)
    """Objects rendered by more than one unit at head, with those units in sorted order (also
    named in `errors`; structured here for policies)."""
    definitions: Mapping[str, Manifest] = field(default_factory=dict)
    """CustomResourceDefinitions rendered at head, by name: the schemas of custom resources."""


@dataclass(frozen=True)
class Preview:
    """What merging head into base does to every cluster."""

    base: str
    head: str
    clusters: tuple[ClusterPlan, ...]
    skip_unavailable: bool = False
    """Units whose source could not be reached do not fail the preview (they are reported as
    not previewed); by default they do."""
    proven_unchanged: int | None = None
    """With changed-only rendering: how many units were proven unchanged without rendering
    (they are listed as `unchanged`); None when every unit was rendered."""

    @property
    def summary(self) -> dict[str, int]:
        """Counts of each action, of failed units and of units with unavailable sources."""
        counts = {action.value: 0 for action in Action}
        failed = unavailable = 0
        for cluster in self.clusters:
            for unit in cluster.units:
                failed += unit.status is UnitStatus.FAILED
                unavailable += unit.status is UnitStatus.UNAVAILABLE
                for change in unit.changes:
                    counts[change.action.value] += 1
        counts["failed"] = failed
        counts["unavailable"] = unavailable
        return counts

    @property
    def failed(self) -> bool:
        """Tell whether any unit or cluster failed (the exit code is then 2).

        A unit whose source was unavailable counts as failed unless `skip_unavailable`.
        """
        failing = {UnitStatus.FAILED} if self.skip_unavailable else _FAILING
        return any(
            cluster.errors or any(unit.status in failing for unit in cluster.units)
            for cluster in self.clusters
        )

    @property
    def changed(self) -> bool:
        """Tell whether anything changes."""
        return any(
            unit.changes or unit.status in (UnitStatus.ADDED, UnitStatus.REMOVED)
            for cluster in self.clusters
            for unit in cluster.units
        )
