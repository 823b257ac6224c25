"""GP004 unit-removed: removing or renaming a pruning Kustomization/HelmRelease needs approval.

A Flux Kustomization's finalizer garbage-collects its whole inventory when the Kustomization is
deleted with `prune: true` (or `deletionPolicy: Delete`), and a HelmRelease uninstalls its
release; Kustomizations it renders go the same way, with everything they manage. Renaming
is a removal plus an addition: the old object's finalizer can delete the objects before the new
unit takes them over and re-creates them. The finding names the removed unit, what it cascades
into and, for a rename, the units its objects move to. It sits on the deletion of the unit's
Flux object (its file, its base annotations) when the change set has one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from core.changes import UnitStatus
from core.findings import Finding, Severity
from core.model import FLUX_HELM_GROUP, FLUX_KUSTOMIZE_GROUP, ObjectRef, UnitKind, UnitRef
from policies.base import RuleMeta, finding
from policies.input import ChangeInput, OwnerGraph, OwnerNode, PolicyInput

__all__ = ["RULE"]

META = RuleMeta(
    id="GP004",
    title="unit-removed",
    severity=Severity.ERROR,
    summary="Removing or renaming a pruning Kustomization/HelmRelease needs approval.",
    docs=(
        "Deleting a Flux Kustomization with prune on deletes everything it manages, nested"
        " Kustomizations included; a rename deletes and re-creates it all. Set"
        " `spec.deletionPolicy: Orphan` (or `prune: false`) on the old unit in a pull request of"
        " its own first, or get an approval."
    ),
    approval_required=True,
)
_LISTED = 5


def _finalizer_deletes(node: OwnerNode) -> bool:
    """Tell whether deleting the unit's Flux object deletes its objects (as the planner does)."""
    if node.suspended or node.deletion_policy == "Orphan":
        return False
    return node.deletion_policy in ("Delete", "WaitForTermination") or node.prune


def _flux_ref(unit: UnitRef) -> ObjectRef:
    group = FLUX_HELM_GROUP if unit.kind is UnitKind.HELM_RELEASE else FLUX_KUSTOMIZE_GROUP
    return ObjectRef(group, unit.kind.value, unit.namespace, unit.name)


@dataclass(frozen=True)
class _UnitRemoved:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for cluster, graph in sorted(policy_input.owners.items()):
            changes = list(policy_input.in_cluster(cluster))
            yield from self._cluster(cluster, graph, changes)

    def _cluster(
        self, cluster: str, graph: OwnerGraph, changes: list[ChangeInput]
    ) -> Iterator[Finding]:
        removed = {ref for ref, node in graph.units.items() if node.status is UnitStatus.REMOVED}
        if not removed:
            return
        deletes: Counter[UnitRef] = Counter(c.unit for c in changes if c.pruned)
        moves: Counter[UnitRef] = Counter(c.moved_from for c in changes if c.moved_from)
        receivers: dict[UnitRef, set[UnitRef]] = {}
        for c in changes:
            if c.moved_from:
                receivers.setdefault(c.moved_from, set()).add(c.unit)
        flux_deletes = {c.ref: c for c in changes if c.pruned}
        for ref in sorted(removed):
            node = graph.units[ref]
            if node.parent in removed:
                continue  # reported with its removed parent
            cascade = self._cascade(graph, ref, removed)
            total = sum(deletes[unit] for unit in cascade)
            moved = sum(moves[unit] for unit in cascade)
            if not total and not (moved and _finalizer_deletes(node)):
                continue  # nothing is deleted: the objects are orphaned or kept
            message = f"{ref} is removed"
            takers = sorted({r for unit in cascade for r in receivers.get(unit, ())} - cascade)
            if takers:
                message += f" (its objects move to {', '.join(map(str, takers))})"
            message += f": Flux garbage-collects the {total} object(s) it manages"
            if moved and _finalizer_deletes(node):
                message += (
                    f", and its finalizer may delete the {moved} moved object(s) before the new"
                    " owner re-creates them"
                )
            nested = sorted(str(u) for u in cascade if u != ref and deletes[u])
            if nested:
                shown = ", ".join(nested[:_LISTED])
                more = f" and {len(nested) - _LISTED} more" if len(nested) > _LISTED else ""
                message += f", through nested units {shown}{more}"
            change = flux_deletes.get(_flux_ref(ref))
            if change is not None:
                yield finding(self.meta, message, change=change)
            else:
                yield finding(self.meta, message, cluster=cluster, unit=ref, file=node.file)

    @staticmethod
    def _cascade(graph: OwnerGraph, root: UnitRef, removed: set[UnitRef]) -> set[UnitRef]:
        found, queue = {root}, [root]
        while queue:
            for child in graph.children(queue.pop()):
                if child in removed and child not in found:
                    found.add(child)
                    queue.append(child)
        return found


RULE = _UnitRemoved()
