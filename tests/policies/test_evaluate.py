"""The gate: configured severities and profiles, fail-closed rule errors, blocking order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.findings import Finding, Severity, Waiver, WaiverKind
from policies.config import parse_config
from policies.evaluate import RULE_ERROR, evaluate
from policies.input import build_input
from tests.policies.cases import case
from tests.policies.toys import Broken, FlagDeletes, NeedsApproval

CHANGES = """
case: a deletion and a creation
cluster: clusters/production
base:
- unit: Kustomization/flux-system/apps
  objects:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: old, namespace: web}}
head:
- unit: Kustomization/flux-system/apps
  objects:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: new, namespace: web}}
"""


def test_defaults_warning_passes_and_approval_required_blocks(tmp_path: Path) -> None:
    policy_input = build_input(case(tmp_path, CHANGES).preview)
    result = evaluate(policy_input, [FlagDeletes(), NeedsApproval()])
    assert [(f.rule, f.severity, f.blocking) for f in result.findings] == [
        ("TT002", Severity.WARNING, True),
        ("TT001", Severity.WARNING, False),
    ]
    assert not result.passed
    assert result.rules == ("TT001", "TT002")
    assert str(result.findings[1].ref) == "ConfigMap/web/old"
    assert result.findings[1].file == "case.yaml"


def test_configured_severity_applies_per_profile(tmp_path: Path) -> None:
    config = parse_config(
        """
policies:
  rules: {TT001: {severity: notice}}
  profiles:
  - {name: production, paths: ["clusters/production/**"], rules: {TT001: {severity: error}}}
"""
    )
    policy_input = build_input(case(tmp_path, CHANGES).preview)
    result = evaluate(policy_input, [FlagDeletes()], config)
    assert [(f.rule, f.severity) for f in result.findings] == [("TT001", Severity.ERROR)]
    assert not result.passed
    elsewhere = parse_config("policies: {rules: {TT001: {severity: notice}}}")
    assert evaluate(policy_input, [FlagDeletes()], elsewhere).findings[0].severity is (
        Severity.NOTICE
    )


def test_disabled_rules_do_not_run_or_report(tmp_path: Path) -> None:
    policy_input = build_input(case(tmp_path, CHANGES).preview)
    off = parse_config("policies: {rules: {TT001: {enabled: false}}}")
    result = evaluate(policy_input, [FlagDeletes()], off)
    assert result.findings == ()
    assert result.rules == ()
    assert result.passed
    only_prod = parse_config(
        """
policies:
  rules: {TT001: {enabled: false}}
  profiles:
  - {name: production, paths: ["clusters/production/**"], rules: {TT001: {enabled: true}}}
"""
    )
    assert len(evaluate(policy_input, [FlagDeletes()], only_prod).findings) == 1


def test_a_rule_that_raises_fails_the_gate(tmp_path: Path) -> None:
    policy_input = build_input(case(tmp_path, CHANGES).preview)
    result = evaluate(policy_input, [Broken(), FlagDeletes()])
    assert result.findings[0].rule == RULE_ERROR
    assert "TT003" in result.findings[0].message
    assert not result.passed
    assert len(result.findings) == 2


def test_waived_findings_stay_in_the_result_but_do_not_block(tmp_path: Path) -> None:
    policy_input = build_input(case(tmp_path, CHANGES).preview)
    waiver = Waiver(WaiverKind.APPROVAL, "approved", by="@alice")

    def waive(found: Finding) -> Finding:
        return replace(found, waiver=waiver)

    result = evaluate(policy_input, [NeedsApproval()], waive=waive)
    assert result.passed
    assert result.waived == result.findings
    assert len(result.findings) == 1
