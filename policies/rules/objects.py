"""Small, defensive readers of object metadata shared by the built-in rules.

Every body a rule sees was written by the pull request, so each reader accepts any shape and
returns an empty value for the wrong one instead of raising. Pure functions; no rule logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.model import FLUX_HELM_GROUP, FLUX_KUSTOMIZE_GROUP, group_of

__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "PRUNE_KEY",
    "RECONCILE_KEY",
    "get",
    "is_flux_unit",
    "is_unit_kind",
    "marks",
]

PRUNE_KEY = f"{FLUX_KUSTOMIZE_GROUP}/prune"
RECONCILE_KEY = f"{FLUX_KUSTOMIZE_GROUP}/reconcile"

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "CSIDriver",
        "CSINode",
        "VolumeAttachment",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "PriorityClass",
        "RuntimeClass",
        "IngressClass",
        "FlowSchema",
        "PriorityLevelConfiguration",
        "CertificateSigningRequest",
        "ClusterIssuer",
    }
)
"""Built-in (and a few ubiquitous add-on) kinds that live outside any namespace."""


def get(obj: Any, path: str, default: Any = None) -> Any:
    """Return the value at a dotted path of a body, or `default` when any step is missing."""
    node = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return default if node is None else node


def marks(obj: Any, key: str) -> set[str]:
    """Return the lower-cased values of `key` among an object's annotations and labels."""
    found = set()
    for section in ("annotations", "labels"):
        values = get(obj, f"metadata.{section}")
        if isinstance(values, Mapping) and key in values:
            found.add(str(values[key]).lower())
    return found


def is_unit_kind(group: str, kind: str) -> bool:
    """Tell whether a group and kind name a Flux Kustomization or HelmRelease."""
    return (group, kind) in (
        (FLUX_KUSTOMIZE_GROUP, "Kustomization"),
        (FLUX_HELM_GROUP, "HelmRelease"),
    )


def is_flux_unit(obj: Any) -> bool:
    """Tell whether a body is a Flux Kustomization or HelmRelease."""
    if not isinstance(obj, Mapping):
        return False
    return is_unit_kind(group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
