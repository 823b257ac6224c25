"""Kubernetes API versions that are deprecated or no longer served, by release.

The table follows the Kubernetes "Deprecated API Migration Guide": each entry names a group,
version and kind, the minor release that deprecated it, the minor release that stopped serving it
(None while still served) and what to use instead. Only built-in APIs are listed. The tests
hold every removal up to the release Tidegate tests against (1.33) against that API server's
discovery: the removed version is not served, its replacement is. Data and lookups only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Deprecation", "entries", "lookup", "parse_minor"]


@dataclass(frozen=True)
class Deprecation:
    """One deprecated group/version/kind."""

    api_version: str
    kind: str
    deprecated_in: int
    """Minor release (1.x) that deprecated it."""
    removed_in: int | None
    """Minor release (1.x) that stopped serving it; None while it is served."""
    replacement: str


def _entries(
    api_versions: tuple[str, ...],
    kinds: tuple[str, ...],
    deprecated_in: int,
    removed_in: int | None,
    replacement: str,
) -> list[Deprecation]:
    return [
        Deprecation(api_version, kind, deprecated_in, removed_in, replacement)
        for api_version in api_versions
        for kind in kinds
    ]


_TABLE: list[Deprecation] = [
    # 1.16
    *_entries(
        ("extensions/v1beta1", "apps/v1beta1", "apps/v1beta2"),
        ("Deployment", "ReplicaSet"),
        9,
        16,
        "apps/v1",
    ),
    *_entries(("extensions/v1beta1", "apps/v1beta2"), ("DaemonSet",), 9, 16, "apps/v1"),
    *_entries(("apps/v1beta1", "apps/v1beta2"), ("StatefulSet",), 9, 16, "apps/v1"),
    *_entries(("extensions/v1beta1",), ("NetworkPolicy",), 9, 16, "networking.k8s.io/v1"),
    # 1.22
    *_entries(
        ("extensions/v1beta1", "networking.k8s.io/v1beta1"),
        ("Ingress",),
        14,
        22,
        "networking.k8s.io/v1",
    ),
    *_entries(("networking.k8s.io/v1beta1",), ("IngressClass",), 19, 22, "networking.k8s.io/v1"),
    *_entries(
        ("apiextensions.k8s.io/v1beta1",),
        ("CustomResourceDefinition",),
        16,
        22,
        "apiextensions.k8s.io/v1",
    ),
    *_entries(
        ("admissionregistration.k8s.io/v1beta1",),
        ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"),
        16,
        22,
        "admissionregistration.k8s.io/v1",
    ),
    *_entries(
        ("apiregistration.k8s.io/v1beta1",), ("APIService",), 19, 22, "apiregistration.k8s.io/v1"
    ),
    *_entries(
        ("certificates.k8s.io/v1beta1",),
        ("CertificateSigningRequest",),
        19,
        22,
        "certificates.k8s.io/v1",
    ),
    *_entries(("coordination.k8s.io/v1beta1",), ("Lease",), 19, 22, "coordination.k8s.io/v1"),
    *_entries(
        ("rbac.authorization.k8s.io/v1beta1",),
        ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"),
        17,
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    *_entries(("scheduling.k8s.io/v1beta1",), ("PriorityClass",), 14, 22, "scheduling.k8s.io/v1"),
    *_entries(
        ("storage.k8s.io/v1beta1",),
        ("CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"),
        19,
        22,
        "storage.k8s.io/v1",
    ),
    # 1.25
    *_entries(("batch/v1beta1",), ("CronJob",), 21, 25, "batch/v1"),
    *_entries(("discovery.k8s.io/v1beta1",), ("EndpointSlice",), 21, 25, "discovery.k8s.io/v1"),
    *_entries(("events.k8s.io/v1beta1",), ("Event",), 19, 25, "events.k8s.io/v1"),
    *_entries(("autoscaling/v2beta1",), ("HorizontalPodAutoscaler",), 22, 25, "autoscaling/v2"),
    *_entries(("policy/v1beta1",), ("PodDisruptionBudget",), 21, 25, "policy/v1"),
    *_entries(
        ("policy/v1beta1", "extensions/v1beta1"),
        ("PodSecurityPolicy",),
        21,
        25,
        "Pod Security Admission (no replacement API)",
    ),
    *_entries(("node.k8s.io/v1beta1",), ("RuntimeClass",), 22, 25, "node.k8s.io/v1"),
    # 1.26
    *_entries(
        ("flowcontrol.apiserver.k8s.io/v1beta1",),
        ("FlowSchema", "PriorityLevelConfiguration"),
        23,
        26,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    *_entries(("autoscaling/v2beta2",), ("HorizontalPodAutoscaler",), 23, 26, "autoscaling/v2"),
    # 1.27
    *_entries(("storage.k8s.io/v1beta1",), ("CSIStorageCapacity",), 24, 27, "storage.k8s.io/v1"),
    # 1.29
    *_entries(
        ("flowcontrol.apiserver.k8s.io/v1beta2",),
        ("FlowSchema", "PriorityLevelConfiguration"),
        26,
        29,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    # 1.32
    *_entries(
        ("flowcontrol.apiserver.k8s.io/v1beta3",),
        ("FlowSchema", "PriorityLevelConfiguration"),
        29,
        32,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
]

_INDEX: Mapping[tuple[str, str], Deprecation] = {(d.api_version, d.kind): d for d in _TABLE}


def lookup(api_version: str, kind: str) -> Deprecation | None:
    """Return the deprecation entry of a group/version/kind, if it has one."""
    return _INDEX.get((api_version, kind))


def entries() -> tuple[Deprecation, ...]:
    """Every entry, in table order."""
    return tuple(_TABLE)


def parse_minor(version: str) -> int:
    """Return the minor release of a Kubernetes version (`1.33`, `v1.33.2` -> 33).

    Raises ValueError naming the value when it is not a 1.x version.
    """
    text = version.strip().removeprefix("v")
    major, _, rest = text.partition(".")
    minor = rest.partition(".")[0]
    if major != "1" or not minor.isdigit():
        raise ValueError(f"{version!r} is not a Kubernetes version like 1.33")
    return int(minor)
