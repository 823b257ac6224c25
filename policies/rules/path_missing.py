"""GP007 kustomization-path-missing: a Kustomization's `spec.path` does not exist at head.

kustomize-controller fails such a Kustomization with "kustomization path not found" and keeps
failing until the path exists again; whatever depends on it waits. The preview fails the unit
with the same message (and withholds its objects, so nothing reads as deleted); this rule turns
that failure into a finding with the Kustomization's file, so the gate names the cause. Only
failures at head are reported: a path missing at base is not this pull request's doing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.changes import UnitStatus
from core.findings import Finding, Severity
from core.model import UnitKind
from policies.base import RuleMeta, finding
from policies.input import PolicyInput

__all__ = ["RULE"]

META = RuleMeta(
    id="GP007",
    title="kustomization-path-missing",
    severity=Severity.ERROR,
    summary="A Kustomization's spec.path must exist at head.",
    docs=(
        "Fix `spec.path` (it is relative to the source root, `./apps/web`), or add the"
        " directory; a renamed directory needs the Kustomizations that point at it updated in"
        " the same pull request."
    ),
)
# kustomize-controller's own wording, which the renderer reuses for the same condition.
_NOT_FOUND = "kustomization path not found"


@dataclass(frozen=True)
class _PathMissing:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for cluster, graph in sorted(policy_input.owners.items()):
            for ref, node in sorted(graph.units.items()):
                if ref.kind is not UnitKind.KUSTOMIZATION or node.status is not UnitStatus.FAILED:
                    continue
                head = _head_part(node.error or "")
                if _NOT_FOUND not in head:
                    continue
                yield finding(
                    self.meta,
                    f"{ref} points at spec.path {node.path or '(empty)'}, which does not exist"
                    " at head: the Kustomization fails until it does",
                    cluster=cluster,
                    unit=ref,
                    file=node.file,
                )


def _head_part(error: str) -> str:
    """Return the head side of a planner failure message (`at base: ...; at head: ...`)."""
    _, found, rest = error.partition("at head: ")
    return rest if found else ""


RULE = _PathMissing()
