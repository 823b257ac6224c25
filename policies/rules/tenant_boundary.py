"""GP015 tenant-boundary: a tenant's files declare cluster-scoped or foreign-namespace objects.

In Flux's multi-tenancy model a tenant's Kustomizations run with the tenant's service account,
which may touch only the tenant's namespaces; a manifest in a tenant's path that creates a
ClusterRole, a Namespace or an object in another team's namespace either fails at apply or, on a
cluster without the lockdown, escapes the tenant. Tenants, their paths and namespaces come from
the `tenants` option (`policies.rules.tenants`). Error on objects the pull request creates,
changes or moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.objects import CLUSTER_SCOPED_KINDS
from policies.rules.tenants import tenant_of, tenants

__all__ = ["RULE"]

META = RuleMeta(
    id="GP015",
    title="tenant-boundary",
    severity=Severity.ERROR,
    summary="Tenant paths may declare only namespaced objects in the tenant's namespaces.",
    docs=(
        "Move cluster-scoped objects and objects for other namespaces to the platform team's"
        " paths, or add the namespace to the tenant's `namespaces` in the configuration."
    ),
)


@dataclass(frozen=True)
class _TenantBoundary:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        reported: set[str] = set()
        for change in policy_input.changes:
            if change.object is None:
                continue
            tenant_list, errors = tenants(policy_input, change.profile)
            for error in errors:
                if error not in reported:
                    reported.add(error)
                    yield finding(self.meta, error, cluster=change.cluster)
            tenant = tenant_of(tenant_list, change.file)
            if tenant is None:
                continue
            ref = change.ref
            if ref.kind in CLUSTER_SCOPED_KINDS or (not ref.namespace and ref.kind == "Namespace"):
                yield finding(
                    self.meta,
                    f"{ref} is cluster-scoped but declared in tenant {tenant.name}'s path",
                    change=change,
                )
            elif ref.namespace and ref.namespace not in tenant.namespaces:
                yield finding(
                    self.meta,
                    f"{ref} is in namespace {ref.namespace}, outside tenant {tenant.name}'s"
                    f" namespaces ({', '.join(sorted(tenant.namespaces)) or 'none'})",
                    change=change,
                )


RULE = _TenantBoundary()
