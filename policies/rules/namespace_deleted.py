"""GP026 namespace-deleted: pruning a Namespace needs a code owner's approval.

The API server deletes everything in a deleted namespace, including objects no Kustomization
manages (workloads created by hand or by operators, PVCs, Secrets issued at run time). Flux
garbage collection has deleted namespaces when ownership moved or labels changed. The finding
counts what the change set itself deletes in the namespace, and what it creates, updates or
moves there, which is lost too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput

__all__ = ["RULE"]

META = RuleMeta(
    id="GP026",
    title="namespace-deleted",
    severity=Severity.ERROR,
    summary="Pruning a Namespace deletes everything in it and needs a code owner's approval.",
    docs=(
        "Every object in a deleted namespace goes, managed or not. Keep the Namespace rendered,"
        " mark it `kustomize.toolkit.fluxcd.io/prune: disabled`, or get an approval."
    ),
    approval_required=True,
)


@dataclass(frozen=True)
class _NamespaceDeleted:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        deleted = {
            (change.cluster, change.ref.name): change
            for change in policy_input.changes
            if change.pruned and (change.ref.group, change.ref.kind) == ("", "Namespace")
        }
        if not deleted:
            return
        pruned: Counter[tuple[str, str]] = Counter()
        kept: Counter[tuple[str, str]] = Counter()
        for change in policy_input.changes:
            key = (change.cluster, change.ref.namespace)
            if key in deleted:
                (pruned if change.pruned else kept)[key] += 1
        for key, change in sorted(deleted.items()):
            message = (
                f"Namespace {change.ref.name} is pruned by {change.unit}: the API server deletes"
                f" everything in it, the {pruned[key]} object(s) this change prunes there and any"
                " object no Kustomization manages"
            )
            if kept[key]:
                message += (
                    f"; {kept[key]} object(s) this change creates, updates or moves there are"
                    " lost too"
                )
            yield finding(self.meta, message, change=change)


RULE = _NamespaceDeleted()
