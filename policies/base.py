"""What a rule is: stable metadata and one pure function from the policy input to findings.

Built-in rules (`policies/rules/`) and user rules (`policies/cel/`) both satisfy `Rule`. A rule
never reads files, the network or the clock, never mutates its input, and never decides waivers,
approvals or configured severities: `policies.evaluate` applies those to what it returns, the same
way for every rule. Rules report with `finding(...)`, which fills in the identity, file and
default severity from the change, so every finding points at an object and a line where it can.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from core.findings import Finding, Severity
from core.model import UnitRef
from policies.input import ChangeInput, PolicyInput

__all__ = ["RULE_ID", "Rule", "RuleMeta", "finding"]

RULE_ID = re.compile(r"^[A-Z]{2,8}[0-9]{3}$")
"""Built-in rule ids: letters then three digits (`GP001`). User rules use their policy name."""


@dataclass(frozen=True)
class RuleMeta:
    """What a rule is, independent of any evaluation."""

    id: str
    """Stable id, never reused: reports, waivers and configuration refer to it."""
    title: str
    """Short kebab-case name, such as `prune-stateful`."""
    severity: Severity
    """Default severity; configuration may override it per profile."""
    summary: str
    """One sentence: what the rule checks."""
    docs: str = ""
    """Longer explanation for the report: why it matters and how to fix it."""
    approval_required: bool = False
    """The finding blocks until a code owner of the affected path approves the head commit."""
    annotation_waivable: bool = True
    """Whether `tidegate.dev/waive-<id>` on the object may waive it (not for plaintext Secrets)."""


@runtime_checkable
class Rule(Protocol):
    """A rule: metadata plus a pure evaluation."""

    @property
    def meta(self) -> RuleMeta:
        """The rule's stable metadata."""
        ...

    def evaluate(self, policy_input: PolicyInput) -> Iterable[Finding]:
        """Return the findings on the input; never raise on hostile content, skip it."""
        ...


def finding(
    meta: RuleMeta,
    message: str,
    *,
    change: ChangeInput | None = None,
    cluster: str = "",
    unit: UnitRef | None = None,
    severity: Severity | None = None,
    file: str | None = None,
    line: int | None = None,
) -> Finding:
    """Build a finding of a rule, about one change or, without one, about a unit or cluster.

    `severity` overrides the rule's default for this finding only (for example "error when the
    object is stateful"); configuration still overrides both.
    """
    if change is not None:
        return Finding(
            rule=meta.id,
            severity=severity or meta.severity,
            message=message,
            cluster=change.cluster,
            unit=change.unit,
            ref=change.ref,
            api_version=change.api_version,
            file=file or change.file,
            line=line if line is not None else change.line,
            approval_required=meta.approval_required,
        )
    return Finding(
        rule=meta.id,
        severity=severity or meta.severity,
        message=message,
        cluster=cluster,
        unit=unit,
        file=file,
        line=line,
        approval_required=meta.approval_required,
    )
