"""GP023 reconciliation-disabled: the pull request suspends a Kustomization or HelmRelease.

`spec.suspend: true` makes Flux stop reconciling the unit: meant for incidents, easily merged
and forgotten, after which Git and the cluster drift apart silently. Warning when the pull
request suspends a unit that was not suspended (or adds one suspended). The
`kustomize.toolkit.fluxcd.io/reconcile: disabled` marker is not checked here: the planner leaves
changes to marked objects out of the change set (Flux will not apply them) and counts them as
`skipped` on the unit, which the preview shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.objects import get, is_flux_unit

__all__ = ["RULE"]

META = RuleMeta(
    id="GP023",
    title="reconciliation-disabled",
    severity=Severity.WARNING,
    summary="Suspending a Kustomization or HelmRelease stops Flux silently.",
    docs=(
        "Suspend during an incident with `flux suspend` instead of a commit, or add a tracking"
        " ticket and resume in a follow-up pull request."
    ),
)


@dataclass(frozen=True)
class _ReconciliationDisabled:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            new, old = change.object, change.old_object
            if new is None or not is_flux_unit(new):
                continue
            if get(new, "spec.suspend") is True and get(old, "spec.suspend") is not True:
                yield finding(
                    self.meta,
                    f"{change.ref} is suspended by this change: Flux stops reconciling it",
                    change=change,
                )


RULE = _ReconciliationDisabled()
