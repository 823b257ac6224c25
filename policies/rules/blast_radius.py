"""GP025 blast-radius: the merge deletes more objects in a cluster than the threshold allows.

A mass garbage collection is rarely intended: upgrades and path changes have deleted namespaces
and everything in them at once. When the objects Flux prunes in one cluster exceed `maxDeletes`
(option, default 20), the merge needs a code owner's approval. The count is the change set's
`delete`s, estimated from the base render: objects created outside Git are not in it (see GP026
for what a namespace deletion takes with it). One finding per cluster, on its largest unit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import UnitRef
from policies.base import RuleMeta, finding
from policies.input import PolicyInput

__all__ = ["RULE"]

META = RuleMeta(
    id="GP025",
    title="blast-radius",
    severity=Severity.ERROR,
    summary="Deleting more objects than the threshold in one merge needs approval.",
    docs=(
        "Split the change into smaller pull requests, or get an approval from a code owner;"
        " raise `maxDeletes` for the profile if large prunes are routine there."
    ),
    approval_required=True,
)
_DEFAULT_MAX = 20


@dataclass(frozen=True)
class _BlastRadius:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        by_cluster: dict[str, Counter[UnitRef]] = {}
        profiles: dict[str, str] = {}
        for change in policy_input.changes:
            if change.pruned:
                by_cluster.setdefault(change.cluster, Counter())[change.unit] += 1
                profiles.setdefault(change.cluster, change.profile)
        for cluster, units in sorted(by_cluster.items()):
            limit = policy_input.option(
                self.meta.id, "maxDeletes", _DEFAULT_MAX, profile=profiles[cluster]
            )
            if not isinstance(limit, int) or isinstance(limit, bool):
                limit = _DEFAULT_MAX
            total = sum(units.values())
            if total <= limit:
                continue
            largest = sorted(units.items(), key=lambda item: (-item[1], item[0]))
            shown = ", ".join(f"{unit} {count}" for unit, count in largest[:3])
            yield finding(
                self.meta,
                f"this merge deletes {total} objects in {cluster}, more than {limit}"
                f" (largest: {shown})",
                cluster=cluster,
                unit=largest[0][0],
                file=_unit_file(policy_input, cluster, largest[0][0]),
            )


def _unit_file(policy_input: PolicyInput, cluster: str, unit: UnitRef) -> str | None:
    graph = policy_input.owners.get(cluster)
    node = graph.units.get(unit) if graph else None
    return node.file if node else None


RULE = _BlastRadius()
