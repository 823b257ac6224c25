"""GP022 flux-bootstrap-change: the pull request changes Flux's own bootstrap objects.

`flux bootstrap` writes `flux-system/gotk-components.yaml` (the controllers) and
`gotk-sync.yaml` (the GitRepository and the root Kustomization) into the cluster directory. A
broken change there stops all reconciliation of the cluster, and some changes (the sync path of
an existing install) cannot be applied by Flux at all. Every change to an object that comes from
a `flux-system` directory, or to the root GitRepository/Kustomization `flux-system/flux-system`,
needs a code owner's approval. One finding per cluster and file, on its first changed object.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import FLUX_KUSTOMIZE_GROUP, FLUX_SOURCE_GROUP
from policies.base import RuleMeta, finding
from policies.input import ChangeInput, PolicyInput

__all__ = ["RULE"]

META = RuleMeta(
    id="GP022",
    title="flux-bootstrap-change",
    severity=Severity.ERROR,
    summary="Changes to Flux's bootstrap objects need a code owner's approval.",
    docs=(
        "Upgrade Flux with `flux bootstrap` or `flux install --export` and review the result;"
        " change the sync path or branch by re-bootstrapping, not by editing gotk-sync.yaml."
    ),
    approval_required=True,
)
_ROOT_OBJECTS = {
    (FLUX_SOURCE_GROUP, "GitRepository", "flux-system", "flux-system"),
    (FLUX_KUSTOMIZE_GROUP, "Kustomization", "flux-system", "flux-system"),
}


def _bootstrap(change: ChangeInput) -> bool:
    if tuple(change.ref) in _ROOT_OBJECTS:
        return True
    return bool(change.file) and "flux-system" in (change.file or "").split("/")[:-1]


@dataclass(frozen=True)
class _FluxBootstrapChange:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        groups: dict[tuple[str, str], list[ChangeInput]] = {}
        for change in policy_input.changes:
            if _bootstrap(change):
                groups.setdefault((change.cluster, change.file or ""), []).append(change)
        for (_cluster, file), changes in sorted(groups.items()):
            first = changes[0]
            where = file or "the bootstrap objects"
            others = f" and {len(changes) - 1} more object(s)" if len(changes) > 1 else ""
            yield finding(
                self.meta,
                f"{first.action.value} of {first.ref}{others} in {where}: Flux's bootstrap"
                " configuration changes",
                change=first,
            )


RULE = _FluxBootstrapChange()
