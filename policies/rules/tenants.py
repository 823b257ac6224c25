"""The `tenants` option shared by the tenant rules (GP015, GP016).

```yaml
policies:
  rules:
    GP015:
      tenants:
      - name: team-a
        paths: ["tenants/team-a/**"]      # repository files the tenant owns
        namespaces: [team-a, team-a-jobs]  # namespaces its objects may use
```

GP016 reads the same list from its own options, or from GP015's when it has none. A malformed
entry is reported, never skipped: a typo must not switch the tenant checks off. Parsing only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.config import glob_match
from policies.input import PolicyInput

__all__ = ["Tenant", "tenant_of", "tenants"]


@dataclass(frozen=True)
class Tenant:
    """One tenant: the files it owns and the namespaces it may use."""

    name: str
    paths: tuple[str, ...]
    namespaces: frozenset[str]


def tenants(policy_input: PolicyInput, profile: str = "") -> tuple[list[Tenant], list[str]]:
    """Return the configured tenants and a message for each malformed entry."""
    raw: Any = policy_input.option("GP016", "tenants", None, profile=profile)
    if raw is None:
        raw = policy_input.option("GP015", "tenants", [], profile=profile)
    if not isinstance(raw, list):
        return [], ["option tenants must be a list of {name, paths, namespaces}"]
    found, errors = [], []
    for index, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        paths = entry.get("paths") if isinstance(entry, Mapping) else None
        namespaces = entry.get("namespaces", []) if isinstance(entry, Mapping) else None
        if (
            not isinstance(name, str)
            or not isinstance(paths, list)
            or not all(isinstance(p, str) for p in paths)
            or not isinstance(namespaces, list)
            or not all(isinstance(n, str) for n in namespaces)
        ):
            errors.append(
                f"option tenants[{index}] must have a name, a list of paths and a list of"
                " namespaces"
            )
            continue
        found.append(Tenant(name, tuple(paths), frozenset(namespaces)))
    return found, errors


def tenant_of(tenant_list: list[Tenant], file: str | None) -> Tenant | None:
    """Return the first tenant whose paths match a repository file."""
    if not file:
        return None
    for tenant in tenant_list:
        if any(glob_match(pattern, file) for pattern in tenant.paths):
            return tenant
    return None
