"""Where Kubernetes workloads keep their pod templates and containers.

Several rules look at the containers of whatever object runs pods (image pinning, replicas under
an autoscaler). This module knows the shapes of the built-in workload kinds and walks them
defensively: repository content is hostile, so a field of the wrong type is skipped, never an
exception. Pure functions over masked objects; no rule logic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["REPLICATED_KINDS", "containers", "pod_spec"]

# Kind -> path of its PodSpec. Group is not part of the key: the kinds are unambiguous among
# built-ins and their removed beta groups (extensions/v1beta1 Deployment has the same shape).
_POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_POD_SPEC_FIELDS: Mapping[str, str] = {
    kind: ".".join(path) for kind, path in _POD_SPEC_PATHS.items()
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

REPLICATED_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})
"""Kinds with `spec.replicas` that a HorizontalPodAutoscaler can scale."""


def _get(node: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def pod_spec(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """Return the field path and PodSpec of a workload object, or None for other kinds."""
    path = _POD_SPEC_PATHS.get(str(obj.get("kind", "")))
    if path is None:
        return None
    spec = _get(obj, path)
    return (_POD_SPEC_FIELDS[str(obj["kind"])], spec) if isinstance(spec, Mapping) else None


def containers(obj: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield the field path and body of every container of a workload object.

    Paths name the container by its index, as `kubectl explain` and the API server's errors do
    (`spec.template.spec.containers[0]`).
    """
    found = pod_spec(obj)
    if found is None:
        return
    prefix, spec = found
    for field in _CONTAINER_LISTS:
        items = spec.get(field)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                yield f"{prefix}.{field}[{index}]", item
