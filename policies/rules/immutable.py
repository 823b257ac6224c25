"""Fields the Kubernetes API server refuses to change on an existing object.

`violations(before, after)` compares the base and head bodies of one updated object and returns
each immutable field the update changes, with the reason the API server gives. It mirrors the
validation of the built-in kinds (apps, batch, core, rbac) in Kubernetes 1.33; the tests hold
the verdicts against a real API server's server-side dry-run. A field absent on either side is
not a change here: server-side apply leaves defaulted and allocated values (a Service's
clusterIP) in place when the manifest stops setting them. Pure functions; no rule logic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["STATEFULSET_MUTABLE", "Violation", "parse_quantity", "violations"]

_MISSING = object()


@dataclass(frozen=True)
class Violation:
    """One immutable field an update changes."""

    field: str
    reason: str


def _get(node: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _changed(before: Mapping[str, Any], after: Mapping[str, Any], path: str) -> bool:
    old, new = _get(before, path), _get(after, path)
    return old is not _MISSING and new is not _MISSING and old != new


def _fields(paths: tuple[str, ...], reason: str) -> Callable[..., list[Violation]]:
    def check(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Violation]:
        return [Violation(path, reason) for path in paths if _changed(before, after, path)]

    return check


# StatefulSet spec fields an update may change (apps/v1 validation, Kubernetes 1.33).
STATEFULSET_MUTABLE = frozenset(
    {
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    }
)


def _statefulset(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Violation]:
    old, new = before.get("spec"), after.get("spec")
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return []
    keys = (old.keys() | new.keys()) - STATEFULSET_MUTABLE
    return [
        Violation(
            f"spec.{key}",
            "a StatefulSet may change only replicas, ordinals, template, updateStrategy,"
            " revisionHistoryLimit, persistentVolumeClaimRetentionPolicy and minReadySeconds",
        )
        for key in sorted(keys)
        if old.get(key, _MISSING) != new.get(key, _MISSING)
    ]


def _pvc(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Violation]:
    old, new = before.get("spec"), after.get("spec")
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return []
    # Only the requested size (growing) and the volume attributes class may change.
    mutable = {"resources", "volumeAttributesClassName"}
    found = [
        Violation(f"spec.{key}", "a bound PersistentVolumeClaim's spec is immutable")
        for key in sorted((old.keys() | new.keys()) - mutable)
        if key in old and key in new and old[key] != new[key]
    ]
    size_path = "spec.resources.requests.storage"
    old_size, new_size = _get(before, size_path), _get(after, size_path)
    if old_size is not _MISSING and new_size is not _MISSING:
        old_bytes, new_bytes = parse_quantity(str(old_size)), parse_quantity(str(new_size))
        if old_bytes is not None and new_bytes is not None and new_bytes < old_bytes:
            found.append(Violation(size_path, "a PersistentVolumeClaim cannot shrink"))
    return found


def _immutable_data(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Violation]:
    if before.get("immutable") is not True:
        return []
    reason = "the object is marked immutable"
    found = [
        Violation(path, reason)
        for path in ("data", "binaryData", "stringData")
        if before.get(path) != after.get(path)
    ]
    if after.get("immutable") is not True:
        found.append(Violation("immutable", "immutable cannot be unset once true"))
    return found


def _secret(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Violation]:
    found = _immutable_data(before, after)
    if _changed(before, after, "type"):
        found.append(Violation("type", "a Secret's type is immutable"))
    return found


_SELECTOR = _fields(("spec.selector",), "the selector of a workload is immutable")

_CHECKS: Mapping[
    tuple[str, str], Callable[[Mapping[str, Any], Mapping[str, Any]], list[Violation]]
] = {
    ("apps", "Deployment"): _SELECTOR,
    ("apps", "ReplicaSet"): _SELECTOR,
    ("apps", "DaemonSet"): _SELECTOR,
    ("apps", "StatefulSet"): _statefulset,
    ("batch", "Job"): _fields(
        ("spec.selector", "spec.template"), "a Job's selector and pod template are immutable"
    ),
    ("", "Service"): _fields(
        ("spec.clusterIP", "spec.clusterIPs"), "a Service's allocated clusterIP is immutable"
    ),
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "ConfigMap"): _immutable_data,
    ("", "Secret"): _secret,
    ("rbac.authorization.k8s.io", "RoleBinding"): _fields(
        ("roleRef",), "a binding's roleRef is immutable"
    ),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _fields(
        ("roleRef",), "a binding's roleRef is immutable"
    ),
}


def violations(
    group: str, kind: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[Violation]:
    """Return the immutable fields an update of one object changes."""
    check = _CHECKS.get((group, kind))
    return check(before, after) if check else []


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def parse_quantity(text: str) -> Decimal | None:
    """Return a Kubernetes quantity (`10Gi`, `500M`, `1.5`) as a number, or None if malformed."""
    match = _QUANTITY.match(text.strip())
    if not match or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None
