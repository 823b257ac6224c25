"""GP001 prune-stateful: pruning an object that holds state needs a code owner's approval.

When a Kustomization (or HelmRelease) stops rendering a PersistentVolumeClaim, PersistentVolume,
StatefulSet or Secret, Flux garbage-collects it, and with a StorageClass `reclaimPolicy: Delete`
the volume and its data go with the claim. Argo CD asks for confirmation before such prunes
(`Prune=confirm`); Tidegate makes the pull request wait for an approval instead. Namespaces and
CustomResourceDefinitions delete everything inside them and have rules of their own (GP026,
GP002). Secrets that kustomize generates (a content-hash suffix on the name) are replaced on every
content change, so their prune is routine and not reported. Extra kinds come from the `kinds`
option (a list of `Kind` or `group/Kind`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import ChangeInput, PolicyInput

__all__ = ["RULE", "is_stateful"]

META = RuleMeta(
    id="GP001",
    title="prune-stateful",
    severity=Severity.ERROR,
    summary="Pruning a PVC, PV, StatefulSet or Secret needs a code owner's approval.",
    docs=(
        "Flux deletes objects that leave a pruning Kustomization; a deleted claim can take its"
        " volume's data with it. Keep the object in the repository, mark it"
        " `kustomize.toolkit.fluxcd.io/prune: disabled` at base, or get an approval."
    ),
    approval_required=True,
)

_STATEFUL = frozenset(
    {
        ("", "PersistentVolumeClaim"),
        ("", "PersistentVolume"),
        ("apps", "StatefulSet"),
        ("", "Secret"),
    }
)
# kustomize's generator suffix: ten characters of its hash alphabet (hex with look-alikes swapped).
_GENERATED = re.compile(r"-[2456789bcdfghkmt]{10}$")


def is_stateful(change: ChangeInput, extra: frozenset[str] = frozenset()) -> bool:
    """Tell whether an object holds state that a prune destroys."""
    ref = change.ref
    if ref.kind in extra or f"{ref.group}/{ref.kind}" in extra:
        return True
    if (ref.group, ref.kind) not in _STATEFUL:
        return False
    return not (ref.kind == "Secret" and _GENERATED.search(ref.name))


@dataclass(frozen=True)
class _PruneStateful:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            if not change.pruned:
                continue
            kinds = policy_input.option(self.meta.id, "kinds", [], profile=change.profile)
            extra = frozenset(str(k) for k in kinds) if isinstance(kinds, list) else frozenset()
            if is_stateful(change, extra):
                yield finding(
                    self.meta,
                    f"{change.ref} is pruned by {change.unit}: Flux deletes it and the state it"
                    " holds",
                    change=change,
                )


RULE = _PruneStateful()
