"""Which Kubernetes kinds are namespaced: built-in kinds, and kinds defined by CRDs.

Flux's apply fails an object of a namespaced kind that has no namespace ("namespace not
specified") and Kubernetes ignores the namespace of a cluster-scoped one, so both renderers and
the planner need a kind's scope. Built-in groups are known here (Kubernetes 1.33); any other
group's kinds come from CustomResourceDefinitions, and their scope is unknown unless a CRD
defining them is rendered. Pure data and functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.model import RawObject, group_of

__all__ = [
    "BUILTIN_GROUPS",
    "CLUSTER_SCOPED_KINDS",
    "apply_scope",
    "crd_scopes",
    "is_namespaced",
]

# Built-in API groups: for these the scope of every kind is known (listed below if cluster-scoped,
# namespaced otherwise). Kinds of any other group come from CRDs, whose scope is known only when
# the CRD is rendered alongside them.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)

CLUSTER_SCOPED_KINDS = frozenset(
    {
        ("", "ComponentStatus"),
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("authentication.k8s.io", "SelfSubjectReview"),
        ("authentication.k8s.io", "TokenReview"),
        ("authorization.k8s.io", "SelfSubjectAccessReview"),
        ("authorization.k8s.io", "SelfSubjectRulesReview"),
        ("authorization.k8s.io", "SubjectAccessReview"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("internal.apiserver.k8s.io", "StorageVersion"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("node.k8s.io", "RuntimeClass"),
        ("policy", "PodSecurityPolicy"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceSlice"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "VolumeAttributesClass"),
        ("storagemigration.k8s.io", "StorageVersionMigration"),
    }
)
"""Built-in cluster-scoped (group, kind) pairs of Kubernetes 1.33."""


def crd_scopes(objects: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], bool]:
    """Return (group, kind) -> namespaced for the CRDs among `objects`."""
    scopes = {}
    for obj in objects:
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        crd = obj.get("spec") or {}
        kind = (crd.get("names") or {}).get("kind")
        if crd.get("group") and kind:
            scopes[(str(crd["group"]), str(kind))] = crd.get("scope") != "Cluster"
    return scopes


def is_namespaced(key: tuple[str, str], crd_scopes: Mapping[tuple[str, str], bool]) -> bool | None:
    """Tell whether a (group, kind) is namespaced; None when its scope is unknown."""
    if key in CLUSTER_SCOPED_KINDS:
        return False
    if key in crd_scopes:
        return crd_scopes[key]
    return True if key[0] in BUILTIN_GROUPS else None


def apply_scope(
    obj: RawObject, crd_scopes: Mapping[tuple[str, str], bool], *, default_namespace: str | None
) -> str | None:
    """Fix an object's namespace by its scope; return a problem, or None when it is fine.

    Cluster-scoped objects lose any namespace. Namespaced objects without one get
    `default_namespace` (helm installs them into the release namespace) or, when it is None,
    are reported (Flux's apply fails them with "namespace not specified"). Kinds of unknown
    scope are left as rendered.
    """
    key = (group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
    namespaced = is_namespaced(key, crd_scopes)
    meta = obj["metadata"]
    if namespaced is False:
        meta.pop("namespace", None)
    elif namespaced and not meta.get("namespace"):
        if default_namespace is None:
            return f"{key[1]}/{meta.get('name')} namespace not specified"
        meta["namespace"] = default_namespace
    return None
