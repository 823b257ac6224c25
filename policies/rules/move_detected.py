"""GP003 move-detected: an object leaves one unit for another, and Flux may delete and re-create it.

When an object moves from Kustomization A to Kustomization B, A prunes it (it left A's render)
and B applies it. kustomize-controller prunes only objects whose ownership labels still name the
pruning Kustomization, so the move is safe when B applies first and relabels the object: when A
lists B in `dependsOn` and both read the same source (A then waits until B has applied the new
revision), when A does not prune, or when the object carries
`kustomize.toolkit.fluxcd.io/prune: disabled` at base. Otherwise A may delete the object before
B re-creates it: downtime for a workload, data loss for a claim. A HelmRelease that loses an
object uninstalls it whatever the labels say, so a move out of a HelmRelease is never safe.
Warning by default (a notice when the move is safe); an error when the object holds state
(GP001's kinds) and the ordering does not make the move safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import UnitKind, UnitRef
from policies.base import RuleMeta, finding
from policies.input import ChangeInput, PolicyInput
from policies.rules.objects import PRUNE_KEY, marks
from policies.rules.prune_stateful import is_stateful

__all__ = ["RULE"]

META = RuleMeta(
    id="GP003",
    title="move-detected",
    severity=Severity.WARNING,
    summary="An object moves between units; Flux may delete it before re-creating it.",
    docs=(
        "Make the unit the object leaves depend on the unit it moves to (`dependsOn`), or mark"
        " the object `kustomize.toolkit.fluxcd.io/prune: disabled` in a pull request before the"
        " move, so the new owner takes it over before the old one prunes."
    ),
)


@dataclass(frozen=True)
class _MoveDetected:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            source = change.moved_from
            if source is None:
                continue
            why_safe = self._safe(policy_input, change, source)
            if why_safe:
                yield finding(
                    self.meta,
                    f"{change.ref} moves from {source} to {change.unit}; safe because {why_safe}",
                    change=change,
                    severity=Severity.NOTICE,
                )
                continue
            stateful = is_stateful(change)
            yield finding(
                self.meta,
                f"{change.ref} moves from {source} to {change.unit}: {source} may prune it before"
                f" {change.unit} re-creates it"
                + (", losing the state it holds" if stateful else ""),
                change=change,
                severity=Severity.ERROR if stateful else None,
            )

    @staticmethod
    def _safe(policy_input: PolicyInput, change: ChangeInput, source: UnitRef) -> str:
        """Return why the move cannot delete the object, or an empty string."""
        if source.kind is UnitKind.HELM_RELEASE:
            return ""
        if "disabled" in marks(change.old_object, PRUNE_KEY):
            return "the object has kustomize.toolkit.fluxcd.io/prune: disabled"
        graph = policy_input.owners.get(change.cluster)
        node = graph.units.get(source) if graph else None
        if node is None:
            return ""
        if not node.prune:
            return f"{source} does not prune"
        target = graph.units.get(change.unit) if graph else None
        # kustomize-controller waits for a dependency to have applied the same revision only
        # when both read the same source; otherwise readiness at an older revision suffices.
        if (
            node.at_head
            and change.unit in node.depends_on
            and target is not None
            and target.source == node.source
        ):
            return f"{source} depends on {change.unit}, which takes the object over first"
        return ""


RULE = _MoveDetected()
