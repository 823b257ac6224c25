"""GP019 helmrelease-remediation: a HelmRelease without install and upgrade remediation retries.

helm-controller's remediation retries default to 0: a failed install or upgrade is not retried,
and the release stays failed until someone intervenes. Flux's own examples set `retries: 3`.
A negative value (retry forever) counts as set. Warning on HelmReleases the pull request
creates, changes or moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import FLUX_HELM_GROUP
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.objects import get

__all__ = ["RULE"]

META = RuleMeta(
    id="GP019",
    title="helmrelease-remediation",
    severity=Severity.WARNING,
    summary="HelmReleases should retry failed installs and upgrades.",
    docs=(
        "Set `spec.install.remediation.retries` and `spec.upgrade.remediation.retries` (for"
        " example 3) so a transient failure does not leave the release failed."
    ),
)


@dataclass(frozen=True)
class _HelmReleaseRemediation:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            body = change.object
            if body is None or (change.ref.group, change.ref.kind) != (
                FLUX_HELM_GROUP,
                "HelmRelease",
            ):
                continue
            missing = [
                f"spec.{phase}.remediation.retries"
                for phase in ("install", "upgrade")
                if not _retries(get(body, f"spec.{phase}.remediation.retries"))
            ]
            if missing:
                yield finding(
                    self.meta,
                    f"{change.ref} does not set {' or '.join(missing)}: a failed"
                    " release is not retried",
                    change=change,
                )


def _retries(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value != 0


RULE = _HelmReleaseRemediation()
