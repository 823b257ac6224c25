"""The verdict vocabulary: findings that policies raise on a change set, and the gate they decide.

Policies (the `policies` package) produce these; reports (`core.report`) render them. They live in
core so that both sides share one type without reports importing the rule engine. Data only: no
rule logic, no formatting, no I/O. Messages are built from masked objects, so they never hold a
Secret value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.model import ObjectRef, UnitRef

__all__ = ["Finding", "PolicyResult", "Severity", "Waiver", "WaiverKind"]


class Severity(enum.StrEnum):
    """How much a finding matters; only `error` blocks the merge."""

    ERROR = "error"
    """Blocks the merge unless waived (VAP `Deny`)."""
    WARNING = "warning"
    """Shown, does not block (VAP `Warn`)."""
    NOTICE = "notice"
    """Informational (VAP `Audit`)."""

    @property
    def blocking(self) -> bool:
        """Tell whether an unwaived finding of this severity fails the gate."""
        return self is Severity.ERROR

    @property
    def rank(self) -> int:
        """Sort key: most severe first."""
        return _RANKS[self]


_RANKS = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTICE: 2}


class WaiverKind(enum.StrEnum):
    """Where a waiver comes from."""

    ANNOTATION = "annotation"
    """`tidegate.dev/waive-<RULE>: "<reason>"` on the object itself."""
    FILE = "file"
    """An entry of the repository's waiver file, with an owner and an expiry."""
    APPROVAL = "approval"
    """An approving review from a code owner of the affected path, on the head commit."""


@dataclass(frozen=True)
class Waiver:
    """Why a finding does not block: always shown in the report."""

    kind: WaiverKind
    reason: str
    by: str = ""
    """Who granted it: the waiver file's owner, or the approving code owners."""
    expires: str = ""
    """ISO date after which a waiver-file entry no longer applies."""
    where: str = ""
    """Where the waiver is written (file, object), for the report."""


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one object, unit or cluster."""

    rule: str
    """Stable rule id, such as `GP001` or a user rule's `policy/validation` name."""
    severity: Severity
    message: str
    cluster: str = ""
    unit: UnitRef | None = None
    ref: ObjectRef | None = None
    """The object concerned, when the finding is about one object."""
    api_version: str = ""
    file: str | None = None
    """Repository file to annotate, when known."""
    line: int | None = None
    approval_required: bool = False
    """The rule blocks until a code owner of the affected path approves the head commit."""
    waiver: Waiver | None = None
    """The waiver that stops this finding from blocking, if any."""
    how_to_waive: str = ""
    """One sentence for the report: how an author can waive this finding, if they can."""

    @property
    def waived(self) -> bool:
        """Tell whether a waiver or approval covers the finding."""
        return self.waiver is not None

    @property
    def blocking(self) -> bool:
        """Tell whether this finding fails the gate."""
        if self.waived:
            return False
        return self.severity.blocking or self.approval_required

    def sort_key(self) -> tuple[int, int, str, str, str, str]:
        """Blocking first, then severity, cluster, rule, object."""
        return (
            0 if self.blocking else 1,
            self.severity.rank,
            self.cluster,
            self.rule,
            str(self.ref or ""),
            self.message,
        )


@dataclass(frozen=True)
class PolicyResult:
    """Every finding of one evaluation, sorted blocking first, and the gate's verdict."""

    findings: tuple[Finding, ...] = ()
    rules: tuple[str, ...] = ()
    """Ids of the rules that ran, for reports that list passing rules (JUnit)."""

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """The findings that fail the gate."""
        return tuple(finding for finding in self.findings if finding.blocking)

    @property
    def passed(self) -> bool:
        """Tell whether the gate passes: no unwaived blocking finding."""
        return not self.blocking

    @property
    def waived(self) -> tuple[Finding, ...]:
        """The findings a waiver or approval covers."""
        return tuple(finding for finding in self.findings if finding.waived)
