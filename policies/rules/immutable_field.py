"""GP014 immutable-field-change: an update changes a field the API server will not change.

A Deployment's selector, a StatefulSet's spec outside its mutable fields, a Job's pod template,
a Service's clusterIP, a bound claim's storage class or a shrinking claim, the data of an
immutable ConfigMap or Secret, a binding's roleRef: the API server rejects the update, the
Kustomization's dry-run fails, and nothing else in the unit is applied until the manifest is
fixed. The field list lives in `policies.rules.immutable`, held against a real API server's
server-side dry-run in the tests. Flux's `spec.force: true` recreates such objects instead; the
rule does not see that setting, so the finding says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.changes import Action
from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.immutable import violations

__all__ = ["RULE"]

META = RuleMeta(
    id="GP014",
    title="immutable-field-change",
    severity=Severity.ERROR,
    summary="Updates must not change fields the API server treats as immutable.",
    docs=(
        "Give the object a new name (so Flux creates the new one and prunes the old), or delete"
        " and re-create it in two pull requests; `spec.force: true` on the Kustomization makes"
        " Flux recreate it, with the downtime that implies."
    ),
)


@dataclass(frozen=True)
class _ImmutableField:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            if change.action not in (Action.UPDATE, Action.MOVE):
                continue
            if change.object is None or change.old_object is None:
                continue
            for found in violations(
                change.ref.group, change.ref.kind, change.old_object, change.object
            ):
                yield finding(
                    self.meta,
                    f"{change.ref} changes {found.field}: {found.reason}; the apply fails"
                    " unless the Kustomization sets spec.force",
                    change=change,
                )


RULE = _ImmutableField()
