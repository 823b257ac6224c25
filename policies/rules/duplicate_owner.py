"""GP005 duplicate-owner: one object is rendered by two Kustomizations or HelmReleases.

Two owners of one object take turns: each reconcile overwrites the other's labels and fields,
versions flap, and when one of them stops rendering the object its garbage collection may delete
what the other still declares (a namespace was deleted that way, depending on which applied
last). The preview already names duplicates as a cluster error; this rule turns each duplicate
the pull request touches (the object is in its change set) into a finding on that change, so it
gates the merge with a file to point at. Duplicates the pull request does not touch are not
reported again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput

__all__ = ["RULE"]

META = RuleMeta(
    id="GP005",
    title="duplicate-owner",
    severity=Severity.ERROR,
    summary="An object must be rendered by exactly one Kustomization or HelmRelease.",
    docs=(
        "Remove the object from all but one unit; to hand it from one unit to another, move it"
        " (see GP003) instead of copying it."
    ),
)


@dataclass(frozen=True)
class _DuplicateOwner:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        seen: set[tuple[str, object]] = set()
        for change in policy_input.changes:
            graph = policy_input.owners.get(change.cluster)
            units = graph.duplicates.get(change.ref) if graph else None
            key = (change.cluster, change.ref)
            if not units or key in seen:
                continue
            seen.add(key)
            yield finding(
                self.meta,
                f"{change.ref} is rendered by {len(units)} units at head:"
                f" {', '.join(map(str, units))}; they overwrite each other and either may prune it",
                change=change,
            )


RULE = _DuplicateOwner()
