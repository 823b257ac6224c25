"""Policy findings as plain data and prose shared by every report format.

`finding_json` is the public JSON shape of one finding (the `findings` list of the preview JSON);
`how_to_waive` and `location` are the sentences the Markdown comment, SARIF and JUnit reuse, so
every format says the same thing. Formatting only: no I/O. Messages are scrubbed of anything
shaped like a mask token, as every other free text in reports is.
"""

from __future__ import annotations

from typing import Any

from core.findings import Finding, PolicyResult
from core.plan import compare as comparing

__all__ = ["WAIVE_PREFIX", "finding_json", "gate_json", "how_to_waive", "location", "message"]

WAIVE_PREFIX = "tidegate.dev/waive-"
"""Annotation prefix of an object waiver: `tidegate.dev/waive-<RULE>: "<reason>"`."""


def message(found: Finding) -> str:
    """Return the finding's message, safe to print."""
    return comparing.scrub(found.message)


def finding_json(found: Finding) -> dict[str, Any]:
    """Return one finding in the public JSON contract (fields are only ever added)."""
    ref = found.ref
    waiver = found.waiver
    return {
        "rule": found.rule,
        "severity": found.severity.value,
        "message": message(found),
        "cluster": found.cluster,
        "unit": str(found.unit) if found.unit else None,
        "apiVersion": found.api_version or None,
        "kind": ref.kind if ref else None,
        "namespace": ref.namespace if ref else None,
        "name": ref.name if ref else None,
        "file": found.file,
        "line": found.line,
        "waived": found.waived,
        "approvalRequired": found.approval_required,
        "blocking": found.blocking,
        "waiver": (
            {
                "kind": waiver.kind.value,
                "reason": comparing.scrub(waiver.reason),
                "by": waiver.by,
                "expires": waiver.expires or None,
                "where": waiver.where or None,
            }
            if waiver
            else None
        ),
    }


def gate_json(result: PolicyResult) -> dict[str, Any]:
    """Return the gate's verdict and counts."""
    return {
        "passed": result.passed,
        "blocking": len(result.blocking),
        "waived": len(result.waived),
        "rules": list(result.rules),
    }


def location(found: Finding) -> str:
    """Say where a finding is: object (or unit), cluster, file and line."""
    what = str(found.ref) if found.ref else (str(found.unit) if found.unit else "")
    parts = [part for part in (what, f"in {found.cluster}" if found.cluster else "") if part]
    if found.file:
        parts.append(f"({found.file}{f':{found.line}' if found.line else ''})")
    return " ".join(parts)


def how_to_waive(found: Finding) -> str:
    """Say how an author can stop a finding from blocking."""
    if found.how_to_waive:
        return found.how_to_waive
    if found.approval_required:
        owners = f" of {found.file}" if found.file else " of the affected path"
        return f"needs an approving review of the head commit from a code owner{owners}"
    if found.ref is None:
        return "add an entry for this rule to the waiver file, with an owner and an expiry"
    return (
        f'add the annotation `{WAIVE_PREFIX}{found.rule}: "<reason>"` to the object, '
        "or an entry to the waiver file"
    )
