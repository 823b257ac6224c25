"""GP006 dependson-graph: `dependsOn` cycles, self-dependencies and dependencies that do not exist.

A Kustomization waiting on a dependency that is not declared never becomes ready, and everything
depending on it waits too; a cycle makes kustomize-controller stop reconciling every unit in it
with only a log line to show for it. Only problems the pull request touches are reported: a unit
whose Flux object it creates, changes or moves, or a dependency it removes. Findings sit on the
change of the depending unit's Flux object, so they point at its file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import UnitKind, UnitRef
from policies.base import RuleMeta, finding
from policies.input import ChangeInput, OwnerGraph, OwnerNode, PolicyInput
from policies.rules.objects import is_unit_kind

__all__ = ["RULE"]

META = RuleMeta(
    id="GP006",
    title="dependson-graph",
    severity=Severity.ERROR,
    summary="dependsOn must name existing units and must not form a cycle.",
    docs=(
        "Point `spec.dependsOn` at Kustomizations (or HelmReleases) the cluster declares, with"
        " their namespace when it differs, and break any cycle: a unit in a cycle never applies."
    ),
)


@dataclass(frozen=True)
class _DependsOnGraph:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for cluster, graph in sorted(policy_input.owners.items()):
            changed = {
                UnitRef(UnitKind(c.ref.kind), c.ref.namespace, c.ref.name): c
                for c in policy_input.in_cluster(cluster)
                if c.object is not None and is_unit_kind(c.ref.group, c.ref.kind)
            }
            yield from self._cluster(cluster, graph, changed)

    def _cluster(
        self, cluster: str, graph: OwnerGraph, changed: Mapping[UnitRef, ChangeInput]
    ) -> Iterator[Finding]:
        live = {ref: node for ref, node in graph.units.items() if node.at_head}
        removed = {ref for ref, node in graph.units.items() if not node.at_head}
        if not changed and not removed:
            # Every finding needs a unit the change touches or a dependency it removes: a
            # cluster it leaves alone (most of a large fleet) is not searched for cycles.
            return

        def report(unit: UnitRef, message: str) -> Finding:
            change = changed.get(unit)
            if change is not None:
                return finding(self.meta, message, change=change)
            return finding(self.meta, message, cluster=cluster, unit=unit, file=live[unit].file)

        for ref in sorted(live):
            for dep in live[ref].depends_on:
                if dep == ref:
                    if ref in changed:
                        yield report(ref, f"{ref} depends on itself and can never become ready")
                elif dep not in live and (ref in changed or dep in removed):
                    why = "is removed by this change" if dep in removed else "is not declared"
                    yield report(
                        ref, f"{ref} depends on {dep}, which {why}: {ref} will never apply"
                    )
        for cycle in _cycles(live):
            if any(unit in changed for unit in cycle):
                path = " -> ".join(str(u) for u in (*cycle, cycle[0]))
                yield report(cycle[0], f"dependsOn cycle {path}: none of these units applies")


def _cycles(units: Mapping[UnitRef, OwnerNode]) -> list[tuple[UnitRef, ...]]:
    """Return each elementary cycle once (strongly connected components of two or more units)."""
    edges = {
        ref: [d for d in node.depends_on if d in units and d != ref] for ref, node in units.items()
    }
    index: dict[UnitRef, int] = {}
    low: dict[UnitRef, int] = {}
    stack: list[UnitRef] = []
    on_stack: set[UnitRef] = set()
    found: list[tuple[UnitRef, ...]] = []
    counter = 0
    # Iterative Tarjan: the graph comes from the pull request, so no recursion depth to exhaust.
    for root in sorted(units):
        if root in index:
            continue
        work: list[tuple[UnitRef, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges[node]
            if position < len(successors):
                work.append((node, position + 1))
                nxt = successors[position]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work and work[-1][0] != node:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(tuple(sorted(component)))
    return sorted(found)


RULE = _DependsOnGraph()
