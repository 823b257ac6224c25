"""GP024 prune-protection-removed: the pull request removes an object's protection from pruning.

`kustomize.toolkit.fluxcd.io/prune: disabled` (annotation or label) keeps an object when its
Kustomization stops rendering it; `helm.sh/resource-policy: keep` does the same for a Helm
release. Teams put them on namespaces and volumes as a safety net, and a namespace was deleted
after another Kustomization dropped the annotation. Removing either needs a code owner's
approval: from then on the next removal deletes the object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.objects import PRUNE_KEY, get, marks

__all__ = ["RULE"]

META = RuleMeta(
    id="GP024",
    title="prune-protection-removed",
    severity=Severity.ERROR,
    summary="Removing prune protection from an object needs a code owner's approval.",
    docs=(
        "Keep `kustomize.toolkit.fluxcd.io/prune: disabled` (or `helm.sh/resource-policy: keep`)"
        " unless the object is meant to be deleted with its unit, and say so in the review."
    ),
    approval_required=True,
)
_HELM_KEEP = "helm.sh/resource-policy"


@dataclass(frozen=True)
class _PruneProtectionRemoved:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            new, old = change.object, change.old_object
            if new is None or old is None:
                continue
            if "disabled" in marks(old, PRUNE_KEY) and "disabled" not in marks(new, PRUNE_KEY):
                yield finding(
                    self.meta,
                    f"{change.ref} loses {PRUNE_KEY}: disabled: Flux will delete it once it is"
                    " no longer rendered",
                    change=change,
                )
            if _helm_keep(old) and not _helm_keep(new):
                yield finding(
                    self.meta,
                    f"{change.ref} loses {_HELM_KEEP}: keep: Helm will delete it with the release",
                    change=change,
                )


def _helm_keep(body: Mapping[str, Any]) -> bool:
    annotations = get(body, "metadata.annotations", {})
    return isinstance(annotations, Mapping) and str(annotations.get(_HELM_KEEP)).lower() == "keep"


RULE = _PruneProtectionRemoved()
