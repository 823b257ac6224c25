"""The input every rule sees: each change in the admission-request shape, with GitOps context.

A `ChangeInput` is one object's change as the Kubernetes API server would receive it when Flux
reconciles the merge: `operation` (`CREATE`, `UPDATE` or `DELETE`), `object` (the head body, None
on `DELETE`) and `old_object` (the base body, None on `CREATE`), the same names and meaning as in a
ValidatingAdmissionPolicy, so CEL written for admission works unchanged. On top of that it says
what only GitOps knows: the `action` Tidegate planned (`create`, `update`, `delete`, `orphan`,
`move`), the cluster, the owning unit and the unit it moves from, whether the owner prunes, the
source file and line, the target Kubernetes version and the profile that applies.

Mapping from actions to admission operations:

- `create` -> `CREATE`; `update` -> `UPDATE`; `delete` (pruned) -> `DELETE`;
- `move` -> `UPDATE` with `moved_from` set (the object persists, Flux may re-create it);
- `orphan` -> no operation (`None`): nothing reaches the API server, Flux just stops managing the
  object. Built-in rules see orphans; admission-style user rules do not.
- `unknown` (one side of a possible move failed to render) -> the graver reading: `CREATE` for an
  object that appears, `DELETE` for one that disappears, so rules never see less than may happen.

`PolicyInput` holds every change of a preview plus the owner graph of each cluster (units, their
`dependsOn`, paths and sources), built once and shared by all rules. Bodies are the masked objects
from the plan: they never hold a Secret value. Data and its construction only: no rule logic.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.changes import Action, Change, ClusterPlan, Preview, UnitPlan, UnitStatus
from core.model import ObjectRef, RawObject, UnitKind, UnitRef
from core.units import SourceRef

__all__ = [
    "DEFAULT_KUBE_VERSION",
    "ChangeInput",
    "Operation",
    "OwnerGraph",
    "OwnerNode",
    "PolicyInput",
    "build_input",
]

DEFAULT_KUBE_VERSION = "1.33"
"""The Kubernetes minor we render and test against, unless the configuration names another."""


class Operation(enum.StrEnum):
    """The admission operation a change becomes when Flux applies it."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


_OPERATIONS: Mapping[Action, Operation | None] = {
    Action.CREATE: Operation.CREATE,
    Action.UPDATE: Operation.UPDATE,
    Action.MOVE: Operation.UPDATE,
    Action.DELETE: Operation.DELETE,
    Action.ORPHAN: None,
    Action.UNKNOWN: None,  # decided by the side that is known, see `_operation`
}


@dataclass(frozen=True, slots=True)
class ChangeInput:
    """One object's change, in the admission-request shape plus its GitOps context."""

    operation: Operation | None
    """None for an orphan: no request reaches the API server."""
    action: Action
    ref: ObjectRef
    api_version: str
    object: RawObject | None
    """The masked head object (VAP `object`); None when it leaves the cluster or Flux."""
    old_object: RawObject | None
    """The masked base object (VAP `oldObject`); for a move, as rendered by the unit it leaves."""
    cluster: str
    """The cluster entry point, such as `clusters/production`."""
    unit: UnitRef
    """The unit that renders the object at head (or rendered it at base, when it leaves)."""
    old_unit: UnitRef | None
    """The unit that rendered it at base: `moved_from` for a move, `unit` for an update or a
    deletion, None for a creation."""
    prune: bool
    """Whether the owner prunes: objects that leave it are deleted (`delete`) or left (`orphan`)."""
    fields: tuple[str, ...] = ()
    """Changed field paths of an update or move."""
    file: str | None = None
    """Repository file the object comes from, when known."""
    line: int | None = None
    """Line of the object in `file`, when known."""
    kube_version: str = DEFAULT_KUBE_VERSION
    profile: str = ""
    """The configuration profile whose path globs match this change (empty: the defaults)."""

    @property
    def moved_from(self) -> UnitRef | None:
        """The unit a moved object leaves."""
        return self.old_unit if self.action is Action.MOVE else None

    @property
    def pruned(self) -> bool:
        """Tell whether Flux garbage-collects the object (the change is a deletion)."""
        return self.action is Action.DELETE

    @property
    def orphaned(self) -> bool:
        """Tell whether the object stays in the cluster but no unit manages it any more."""
        return self.action is Action.ORPHAN

    @property
    def body(self) -> RawObject:
        """The object as it ends up (head), else as it was (base): what names and labels it."""
        return self.object if self.object is not None else (self.old_object or {})

    def admission(self) -> dict[str, Any]:
        """Return the variables a ValidatingAdmissionPolicy sees, plus `tidegate` context.

        `request` carries the fields of an AdmissionRequest that depend only on the object
        (kind, resource name, namespace, operation); user info is not known before a merge.
        """
        return {
            "object": self.object,
            "oldObject": self.old_object,
            "request": {
                "operation": self.operation.value if self.operation else "",
                "kind": {
                    "group": self.ref.group,
                    "version": _version(self.api_version),
                    "kind": self.ref.kind,
                },
                "name": self.ref.name,
                "namespace": self.ref.namespace,
                "dryRun": True,
            },
            "tidegate": self.context(),
        }

    def context(self) -> dict[str, Any]:
        """Return the GitOps context as plain data (CEL `tidegate`, fixtures, JSON)."""
        return {
            "action": self.action.value,
            "cluster": self.cluster,
            "unit": str(self.unit),
            "oldUnit": str(self.old_unit) if self.old_unit else "",
            "movedFrom": str(self.moved_from) if self.moved_from else "",
            "prune": self.prune,
            "pruned": self.pruned,
            "orphaned": self.orphaned,
            "file": self.file or "",
            "line": self.line or 0,
            "kubeVersion": self.kube_version,
            "profile": self.profile,
            "fields": list(self.fields),
        }


def _version(api_version: str) -> str:
    return api_version.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class OwnerNode:
    """One unit of the owner graph: a Flux Kustomization or HelmRelease."""

    unit: UnitRef
    status: UnitStatus
    prune: bool
    path: str | None = None
    """`spec.path` of a Kustomization, chart of a HelmRelease."""
    source: SourceRef | None = None
    depends_on: tuple[UnitRef, ...] = ()
    parent: UnitRef | None = None
    """The unit that renders this unit's Flux object."""
    suspended: bool = False
    file: str | None = None
    """Repository file that defines the unit's Flux object."""
    error: str | None = None
    """Why a `failed` unit could not be planned (`at base: ...`, `at head: ...`)."""
    deletion_policy: str = "MirrorPrune"
    """What the unit's finalizer does with its objects when its Flux object is deleted."""

    @property
    def at_head(self) -> bool:
        """Tell whether the repository still declares the unit at head."""
        return self.status is not UnitStatus.REMOVED


@dataclass(frozen=True)
class OwnerGraph:
    """The units of one cluster entry point and their edges (parent, `dependsOn`)."""

    cluster: str
    units: Mapping[UnitRef, OwnerNode] = field(default_factory=dict)
    duplicates: Mapping[ObjectRef, tuple[UnitRef, ...]] = field(default_factory=dict)
    """Objects more than one unit renders at head, with those units."""
    definitions: Mapping[str, RawObject] = field(default_factory=dict)
    """CustomResourceDefinitions rendered at head, by name, changed or not."""

    def children(self, ref: UnitRef) -> tuple[UnitRef, ...]:
        """Return the units whose Flux objects this unit renders."""
        return tuple(node.unit for node in self.units.values() if node.parent == ref)

    def dependents(self, ref: UnitRef) -> tuple[UnitRef, ...]:
        """Return the units that list this unit in their `dependsOn`."""
        return tuple(node.unit for node in self.units.values() if ref in node.depends_on)


@dataclass(frozen=True)
class PolicyInput:
    """Everything rules evaluate: the changes of a preview and each cluster's owner graph."""

    base: str
    head: str
    changes: tuple[ChangeInput, ...]
    owners: Mapping[str, OwnerGraph]
    """Owner graph by cluster entry point."""
    kube_version: str = DEFAULT_KUBE_VERSION
    options: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    """Rule options (thresholds, lists) from the configuration, by profile (`""`: defaults),
    then rule id, then option name."""

    def option(self, rule: str, name: str, default: Any, *, profile: str = "") -> Any:
        """Return a rule's option in a profile (pass `change.profile`), else the default."""
        for scope in (profile, ""):
            found = self.options.get(scope, {}).get(rule, {})
            if name in found:
                return found[name]
        return default

    def in_cluster(self, cluster: str) -> Iterator[ChangeInput]:
        """Yield the changes of one cluster."""
        return (change for change in self.changes if change.cluster == cluster)


Profiler = Callable[[str, str | None], str]
"""`(cluster, file) -> profile name`; see `policies.config.PolicyConfig.profile_of`."""


def build_input(
    preview: Preview,
    *,
    kube_version: str = DEFAULT_KUBE_VERSION,
    profile_of: Profiler | None = None,
    options: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> PolicyInput:
    """Turn a planned preview into the policy input (objects are shared, not copied)."""
    changes: list[ChangeInput] = []
    owners: dict[str, OwnerGraph] = {}
    for cluster in preview.clusters:
        owners[cluster.path] = _graph(cluster)
        for unit in cluster.units:
            for change in unit.changes:
                item = _change(cluster.path, unit, change, kube_version)
                if profile_of is not None:
                    item = replace(item, profile=profile_of(cluster.path, item.file))
                changes.append(item)
    return PolicyInput(
        base=preview.base,
        head=preview.head,
        changes=tuple(changes),
        owners=owners,
        kube_version=kube_version,
        options=dict(options or {}),
    )


# Owner graphs by plan object. Each entry holds its plan, so the id cannot name another plan
# while the entry lives.
_GRAPHS: dict[int, tuple[ClusterPlan, OwnerGraph]] = {}
_GRAPHS_KEPT = 256
_GRAPHS_LOCK = threading.Lock()


def _graph(cluster: ClusterPlan) -> OwnerGraph:
    """A cluster plan's owner graph, made once per plan object.

    A warm process hands every preview whose change leaves a cluster alone the same plan object
    (kept plans, `core.plan.kept`): a fleet of 100 clusters would otherwise make ~15,000 nodes
    for each preview of a one-file change.
    """
    with _GRAPHS_LOCK:
        found = _GRAPHS.get(id(cluster))
    if found is not None and found[0] is cluster:
        return found[1]
    graph = OwnerGraph(
        cluster.path,
        {unit.unit: _node(unit) for unit in cluster.units},
        duplicates=cluster.duplicates,
        definitions={name: crd.body for name, crd in cluster.definitions.items()},
    )
    with _GRAPHS_LOCK:
        if len(_GRAPHS) >= _GRAPHS_KEPT:
            del _GRAPHS[next(iter(_GRAPHS))]  # the oldest
        _GRAPHS[id(cluster)] = (cluster, graph)
    return graph


def _node(unit: UnitPlan) -> OwnerNode:
    return OwnerNode(
        unit=unit.unit,
        status=unit.status,
        prune=unit.prune,
        path=unit.path,
        source=unit.source,
        depends_on=unit.depends_on,
        parent=unit.parent,
        suspended=unit.suspended,
        file=unit.file,
        error=unit.error,
        deletion_policy=unit.deletion_policy,
    )


def _operation(change: Change) -> Operation | None:
    if change.action is Action.UNKNOWN:
        return Operation.CREATE if change.after is not None else Operation.DELETE
    return _OPERATIONS[change.action]


def _change(cluster: str, unit: UnitPlan, change: Change, kube_version: str) -> ChangeInput:
    if change.action is Action.MOVE:
        old_unit: UnitRef | None = change.moved_from
    elif change.action is Action.CREATE or (
        change.action is Action.UNKNOWN and change.before is None
    ):
        old_unit = None
    else:
        old_unit = unit.unit
    return ChangeInput(
        operation=_operation(change),
        action=change.action,
        ref=change.ref,
        api_version=change.api_version,
        object=change.after.body if change.after is not None else None,
        old_object=change.before.body if change.before is not None else None,
        cluster=cluster,
        unit=unit.unit,
        old_unit=old_unit,
        prune=unit.prune if unit.unit.kind is UnitKind.KUSTOMIZATION else True,
        fields=change.fields,
        file=change.source,
        kube_version=kube_version,
    )
