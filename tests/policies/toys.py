"""Small rules for testing the engine itself (the built-in catalog has its own tests)."""

from __future__ import annotations

from collections.abc import Iterable

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import Operation, PolicyInput


class FlagDeletes:
    """Flags every object the merge deletes."""

    meta = RuleMeta(
        id="TT001",
        title="flag-deletes",
        severity=Severity.WARNING,
        summary="Flags every deletion.",
    )

    def evaluate(self, policy_input: PolicyInput) -> Iterable[Finding]:
        for change in policy_input.changes:
            if change.operation is Operation.DELETE:
                yield finding(self.meta, f"{change.ref} is deleted", change=change)


class NeedsApproval:
    """Flags every creation and update, as an approval-required rule."""

    meta = RuleMeta(
        id="TT002",
        title="needs-approval",
        severity=Severity.WARNING,
        summary="Every creation or update needs a code owner's approval.",
        approval_required=True,
    )

    def evaluate(self, policy_input: PolicyInput) -> Iterable[Finding]:
        for change in policy_input.changes:
            if change.operation in (Operation.CREATE, Operation.UPDATE):
                yield finding(self.meta, f"{change.ref} changes", change=change)


class Broken:
    """Raises, as a defective rule would."""

    meta = RuleMeta(id="TT003", title="broken", severity=Severity.NOTICE, summary="Always raises.")

    def evaluate(self, policy_input: PolicyInput) -> Iterable[Finding]:
        raise KeyError("spec")


class Unwaivable(FlagDeletes):
    """Flags deletions; annotations cannot waive it."""

    meta = RuleMeta(
        id="TT004",
        title="unwaivable",
        severity=Severity.ERROR,
        summary="Flags deletions; only the waiver file waives it.",
        annotation_waivable=False,
    )
