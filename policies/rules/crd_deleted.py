"""GP002 crd-deleted: pruning a CustomResourceDefinition needs a code owner's approval.

Deleting a CRD deletes every custom object of its kind in the whole cluster, whoever created
them; Helm refuses to delete CRDs for that reason. The finding cannot be waived by an annotation
on the CRD: a waiver added by the same pull request would approve itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput

__all__ = ["RULE"]

META = RuleMeta(
    id="GP002",
    title="crd-deleted",
    severity=Severity.ERROR,
    summary="Pruning a CustomResourceDefinition needs a code owner's approval.",
    docs=(
        "A deleted CRD takes every object of its kind with it, in every namespace. Keep the CRD"
        " rendered, mark it `kustomize.toolkit.fluxcd.io/prune: disabled`, or get an approval."
    ),
    approval_required=True,
    annotation_waivable=False,
)


@dataclass(frozen=True)
class _CrdDeleted:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            ref = change.ref
            if change.pruned and (ref.group, ref.kind) == (
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
            ):
                yield finding(
                    self.meta,
                    f"{ref} is pruned by {change.unit}: every {ref.name} object in the cluster"
                    " is deleted with it",
                    change=change,
                )


RULE = _CrdDeleted()
