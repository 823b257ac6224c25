"""GP016 tenant-reconciler-lockdown: a tenant's Flux units must run as the tenant.

Flux's multi-tenancy lockdown requires every tenant Kustomization and HelmRelease to set
`spec.serviceAccountName` (otherwise it reconciles with the controller's cluster-admin rights)
and to read sources only from its own namespace (a cross-namespace `sourceRef` reads another
tenant's repository). Flux's multi-tenancy example enforces exactly this with an admission
policy; this rule enforces it before the merge. Tenants come from the `tenants` option.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import FLUX_HELM_GROUP
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.objects import get, is_flux_unit
from policies.rules.tenants import tenant_of, tenants

__all__ = ["RULE"]

META = RuleMeta(
    id="GP016",
    title="tenant-reconciler-lockdown",
    severity=Severity.ERROR,
    summary="Tenant Kustomizations/HelmReleases need a service account and same-namespace sources.",
    docs=(
        "Set `spec.serviceAccountName` to the tenant's reconciler account and reference sources"
        " in the unit's own namespace."
    ),
)


@dataclass(frozen=True)
class _TenantLockdown:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            body = change.object
            if body is None or not is_flux_unit(body):
                continue
            tenant = tenant_of(tenants(policy_input, change.profile)[0], change.file)
            if tenant is None:
                continue
            ref = change.ref
            account = get(body, "spec.serviceAccountName")
            if not isinstance(account, str) or not account:
                yield finding(
                    self.meta,
                    f"{ref} of tenant {tenant.name} has no spec.serviceAccountName: it would"
                    " reconcile with the controller's own rights",
                    change=change,
                )
            source_path = (
                "spec.chart.spec.sourceRef" if ref.group == FLUX_HELM_GROUP else "spec.sourceRef"
            )
            source_ns = get(body, f"{source_path}.namespace")
            if isinstance(source_ns, str) and source_ns and source_ns != ref.namespace:
                yield finding(
                    self.meta,
                    f"{ref} of tenant {tenant.name} reads a source in namespace {source_ns}"
                    f" ({source_path}.namespace), not its own {ref.namespace}",
                    change=change,
                )


RULE = _TenantLockdown()
