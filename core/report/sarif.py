"""Policy findings as a SARIF 2.1.0 log, for code scanning and other SARIF readers.

One run, tool `Tidegate`, one `reportingDescriptor` per rule that ran or reported. Every finding
is a result with `ruleId`, a level (`error`, `warning`, `note`), its message and, when known, the
repository file and line, plus a logical location naming the cluster and object. Waived findings
carry a `suppressions` entry with the waiver's reason, so readers show them as suppressed rather
than losing them. `partialFingerprints` is a digest of rule, cluster, object and message, so the
same finding on a later commit is recognised as the same alert. Formatting only: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from core.findings import Finding, PolicyResult, Severity
from core.report import policy as report_policy

__all__ = ["SCHEMA_URI", "RuleInfo", "dumps", "to_sarif"]

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTICE: "note"}

RuleInfo = Mapping[str, tuple[str, str]]
"""Rule id -> (title, summary), for the rule descriptors."""


def to_sarif(result: PolicyResult, rules: RuleInfo, *, version: str = "") -> dict[str, Any]:
    """Return the SARIF log of a policy result."""
    ids = sorted(set(result.rules) | {f.rule for f in result.findings})
    index = {rule: position for position, rule in enumerate(ids)}
    driver: dict[str, Any] = {
        "name": "Tidegate",
        "informationUri": "https://tidegate.dev",
        "rules": [_descriptor(rule, rules.get(rule)) for rule in ids],
    }
    if version:
        driver["version"] = version
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "results": [_result(f, index[f.rule]) for f in result.findings],
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def dumps(result: PolicyResult, rules: RuleInfo, *, version: str = "") -> str:
    """Return the SARIF log as JSON text."""
    return json.dumps(to_sarif(result, rules, version=version), indent=2, ensure_ascii=False) + "\n"


def _descriptor(rule: str, info: tuple[str, str] | None) -> dict[str, Any]:
    title, summary = info or (rule, f"Rule {rule}")
    return {
        "id": rule,
        "name": title,
        "shortDescription": {"text": summary},
    }


def _result(found: Finding, rule_index: int) -> dict[str, Any]:
    text = report_policy.message(found)
    result: dict[str, Any] = {
        "ruleId": found.rule,
        "ruleIndex": rule_index,
        "level": _LEVELS[found.severity],
        "message": {
            "text": f"{text} To unblock: {report_policy.how_to_waive(found)}."
            if found.blocking
            else text
        },
        "partialFingerprints": {"tidegate/v1": _fingerprint(found)},
    }
    location: dict[str, Any] = {}
    if found.file:
        physical: dict[str, Any] = {"artifactLocation": {"uri": found.file}}
        if found.line:
            physical["region"] = {"startLine": found.line}
        location["physicalLocation"] = physical
    what = found.ref or found.unit
    if what is not None or found.cluster:
        location["logicalLocations"] = [
            {
                "fullyQualifiedName": "/".join(p for p in (found.cluster, str(what or "")) if p),
                "kind": "resource" if found.ref else "module",
            }
        ]
    if location:
        result["locations"] = [location]
    properties: dict[str, Any] = {"approvalRequired": found.approval_required}
    if found.cluster:
        properties["cluster"] = found.cluster
    result["properties"] = properties
    if found.waiver is not None:
        result["suppressions"] = [
            {
                "kind": "external" if found.waiver.where else "inSource",
                "status": "accepted",
                "justification": f"{found.waiver.kind.value}: {found.waiver.reason}",
            }
        ]
    return result


def _fingerprint(found: Finding) -> str:
    key = "\x00".join(
        (found.rule, found.cluster, str(found.ref or found.unit or ""), found.message)
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]
