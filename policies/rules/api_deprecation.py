"""GP012 api-deprecation: an object uses an API version deprecated or removed in the target release.

The target is the configured Kubernetes version (`policies.kubernetesVersion`, default 1.33). An
API version the target no longer serves is an error: the apply fails and Flux stops reconciling
the unit. One that is deprecated but still served is a warning, with the release that removes
it. The table (`policies.rules.api_versions`) follows the Kubernetes deprecation guide.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.api_versions import lookup, parse_minor

__all__ = ["RULE"]

META = RuleMeta(
    id="GP012",
    title="api-deprecation",
    severity=Severity.ERROR,
    summary="API versions must be served by the target Kubernetes release.",
    docs=(
        "Move the manifest to the replacement API version named in the finding (for most kinds"
        " only `apiVersion` changes; the Kubernetes deprecation guide lists the field changes)."
    ),
)


@dataclass(frozen=True)
class _ApiDeprecation:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            if change.object is None:
                continue
            entry = lookup(change.api_version, change.ref.kind)
            if entry is None:
                continue
            try:
                target = parse_minor(change.kube_version)
            except ValueError:
                target = parse_minor(policy_input.kube_version)
            name = f"{change.api_version} {change.ref.kind}"
            if entry.removed_in is not None and target >= entry.removed_in:
                yield finding(
                    self.meta,
                    f"{change.ref}: {name} is not served since Kubernetes 1.{entry.removed_in}"
                    f" (target 1.{target}); use {entry.replacement}",
                    change=change,
                )
            elif target >= entry.deprecated_in:
                until = f", removed in 1.{entry.removed_in}" if entry.removed_in is not None else ""
                yield finding(
                    self.meta,
                    f"{change.ref}: {name} is deprecated since Kubernetes"
                    f" 1.{entry.deprecated_in}{until}; use {entry.replacement}",
                    change=change,
                    severity=Severity.WARNING,
                )


RULE = _ApiDeprecation()
