"""GP009 hpa-and-replicas: a workload scaled by an autoscaler also sets `spec.replicas`.

With a HorizontalPodAutoscaler (or a KEDA ScaledObject) in charge of a Deployment or
StatefulSet, every apply of a manifest that sets `spec.replicas` resets the replica count the
autoscaler chose, until it scales again: each reconcile of the unit rescales the workload. The
Kubernetes guidance is to remove `spec.replicas` from the manifest. Warning when a changed
workload sets it; an error when the pull request changes the value, because the merge then
rescales the workload at once. The rule matches autoscalers and workloads among the objects the
pull request creates, changes or moves, in the same cluster and namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import group_of
from policies.base import RuleMeta, finding
from policies.input import ChangeInput, PolicyInput
from policies.rules.objects import get
from policies.rules.workloads import REPLICATED_KINDS

__all__ = ["RULE"]

META = RuleMeta(
    id="GP009",
    title="hpa-and-replicas",
    severity=Severity.WARNING,
    summary="A workload scaled by an autoscaler must not set spec.replicas.",
    docs=(
        "Remove `spec.replicas` from the workload's manifest (the autoscaler's `minReplicas`"
        " sets the floor); otherwise every reconcile resets the replica count."
    ),
)

_AUTOSCALERS = {("autoscaling", "HorizontalPodAutoscaler"), ("keda.sh", "ScaledObject")}
Target = tuple[str, str, str, str]  # cluster, namespace, kind, name


def _target(change: ChangeInput) -> Target | None:
    body = change.object
    ref = change.ref
    if body is None or (ref.group, ref.kind) not in _AUTOSCALERS:
        return None
    kind = get(body, "spec.scaleTargetRef.kind", "Deployment" if ref.group == "keda.sh" else "")
    name = get(body, "spec.scaleTargetRef.name", "")
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        return None
    return (change.cluster, ref.namespace, kind, name)


@dataclass(frozen=True)
class _HpaReplicas:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        scalers: dict[Target, ChangeInput] = {}
        for change in policy_input.changes:
            target = _target(change)
            if target is not None:
                scalers.setdefault(target, change)
        if not scalers:
            return
        for change in policy_input.changes:
            body = change.object
            ref = change.ref
            if body is None or ref.kind not in REPLICATED_KINDS:
                continue
            if group_of(change.api_version) not in ("apps", ""):
                continue
            scaler = scalers.get((change.cluster, ref.namespace, ref.kind, ref.name))
            replicas = get(body, "spec.replicas")
            if scaler is None or replicas is None:
                continue
            old = get(change.old_object, "spec.replicas")
            rescales = change.old_object is not None and old != replicas
            message = (
                f"{ref} sets spec.replicas: {replicas} but {scaler.ref} scales it;"
                " every reconcile resets the autoscaler's choice"
            )
            if rescales:
                message += f", and this change sets it from {old} to {replicas}"
            yield finding(
                self.meta,
                message,
                change=change,
                severity=Severity.ERROR if rescales else None,
            )


RULE = _HpaReplicas()
