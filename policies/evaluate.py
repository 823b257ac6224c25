"""Run rules over a policy input and decide the gate.

The order is fixed and the same for every rule:

1. each enabled rule evaluates the whole input (a rule disabled in every profile does not run);
2. a finding in a profile where its rule is disabled is dropped; the configured severity of the
   finding's profile replaces the rule's (`PolicyConfig.rule`);
3. waivers and approvals (`policies.waivers`) mark findings they cover, never drop them, so the
   report shows each one with its reason;
4. findings are sorted blocking first; the gate fails when any unwaived blocking finding remains.

A rule that raises is a defect, not a verdict: it becomes a blocking `rule-error` finding naming
the rule, so the gate fails closed instead of passing without it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from core.findings import Finding, PolicyResult, Severity
from policies.base import Rule
from policies.config import PolicyConfig
from policies.input import PolicyInput

__all__ = ["RULE_ERROR", "Waive", "evaluate"]

RULE_ERROR = "rule-error"

Waive = Callable[[Finding], Finding]
"""Returns the finding with a waiver attached when one covers it, else the finding unchanged."""


def evaluate(
    policy_input: PolicyInput,
    rules: Iterable[Rule],
    config: PolicyConfig | None = None,
    *,
    waive: Waive | None = None,
) -> PolicyResult:
    """Evaluate rules on the input and return every finding with the gate's verdict."""
    config = config or PolicyConfig()
    profiles = ("", *(profile.name for profile in config.profiles))
    findings: list[Finding] = []
    ran: list[str] = []
    for rule in rules:
        rule_id = rule.meta.id
        if all(config.rule(rule_id, profile).enabled is False for profile in profiles):
            continue
        ran.append(rule_id)
        try:
            produced = list(rule.evaluate(policy_input))
        except Exception as exc:  # a broken rule must fail the gate, not crash the run
            findings.append(_rule_error(rule_id, exc))
            continue
        for found in produced:
            configured = _configure(found, config)
            if configured is not None:
                findings.append(waive(configured) if waive else configured)
    findings.sort(key=Finding.sort_key)
    return PolicyResult(findings=tuple(findings), rules=tuple(ran))


def _configure(found: Finding, config: PolicyConfig) -> Finding | None:
    """Apply the configuration of the finding's profile; None when the rule is off there."""
    profile = config.profile_of(found.cluster, found.file)
    settings = config.rule(found.rule, profile)
    if settings.enabled is False:
        return None
    severity = settings.effective(found.severity)
    return found if severity is found.severity else replace(found, severity=severity)


def _rule_error(rule_id: str, exc: Exception) -> Finding:
    return Finding(
        rule=RULE_ERROR,
        severity=Severity.ERROR,
        message=f"rule {rule_id} failed ({type(exc).__name__}); the gate fails closed without it",
    )
