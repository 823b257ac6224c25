"""Which requests a policy or binding applies to: resource rules and label selectors.

These are ValidatingAdmissionPolicy's `matchConstraints` and a binding's `matchResources`.

A resource rule names API groups, versions, resources (plural, lower case, as in RBAC), operations
and optionally resource names and scope; `*` matches anything. The resource of an object is read
from its kind through a table of the built-in kinds (and a regular English plural otherwise, as
kubectl guesses for unknown kinds). `matchPolicy: Equivalent` (the default) ignores the version,
since a request through another version of the same resource would be converted; `Exact` does not.

Selectors: `objectSelector` matches when the new or the old object's labels match;
`namespaceSelector` matches a namespaced object by its namespace's labels. Before a merge those
labels are known only for a Namespace the change set itself creates or updates; otherwise the
namespace carries just `kubernetes.io/metadata.name`, the label the API server always sets. A
Namespace object is matched by its own labels; other cluster-scoped objects always match. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LabelSelector",
    "MatchResources",
    "Request",
    "Requirement",
    "ResourceRule",
    "labels_of",
    "resource_of",
]

# kind -> (resource, namespaced) for the built-in kinds users write policies about.
_BUILTIN: Mapping[str, tuple[str, bool]] = {
    "Pod": ("pods", True),
    "Service": ("services", True),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "ServiceAccount": ("serviceaccounts", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "PersistentVolume": ("persistentvolumes", False),
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "Endpoints": ("endpoints", True),
    "LimitRange": ("limitranges", True),
    "ResourceQuota": ("resourcequotas", True),
    "ReplicationController": ("replicationcontrollers", True),
    "Deployment": ("deployments", True),
    "StatefulSet": ("statefulsets", True),
    "DaemonSet": ("daemonsets", True),
    "ReplicaSet": ("replicasets", True),
    "Job": ("jobs", True),
    "CronJob": ("cronjobs", True),
    "Ingress": ("ingresses", True),
    "IngressClass": ("ingressclasses", False),
    "NetworkPolicy": ("networkpolicies", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "StorageClass": ("storageclasses", False),
    "PriorityClass": ("priorityclasses", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "ValidatingAdmissionPolicy": ("validatingadmissionpolicies", False),
    "ValidatingAdmissionPolicyBinding": ("validatingadmissionpolicybindings", False),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", False),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", False),
    "Kustomization": ("kustomizations", True),
    "HelmRelease": ("helmreleases", True),
    "GitRepository": ("gitrepositories", True),
    "HelmRepository": ("helmrepositories", True),
    "OCIRepository": ("ocirepositories", True),
    "Bucket": ("buckets", True),
    "HelmChart": ("helmcharts", True),
}


def resource_of(kind: str, namespaced_hint: bool) -> tuple[str, bool]:
    """Return the plural resource name of a kind and whether it is namespaced."""
    known = _BUILTIN.get(kind)
    if known is not None:
        return known
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        plural = lower + "es"
    elif lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        plural = lower[:-1] + "ies"
    else:
        plural = lower + "s"
    return plural, namespaced_hint


@dataclass(frozen=True)
class Request:
    """What matching looks at: one admission request's identity and bodies."""

    operation: str
    group: str
    version: str
    kind: str
    resource: str
    namespaced: bool
    name: str
    namespace: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None
    namespace_labels: Mapping[str, str]


def _in(values: Sequence[str], value: str) -> bool:
    return "*" in values or value in values


@dataclass(frozen=True)
class ResourceRule:
    """One entry of `resourceRules` (or `excludeResourceRules`)."""

    groups: tuple[str, ...]
    versions: tuple[str, ...]
    resources: tuple[str, ...]
    operations: tuple[str, ...] = ("*",)
    names: tuple[str, ...] = ()
    scope: str = "*"

    def matches(self, request: Request, *, exact: bool, with_operation: bool = True) -> bool:
        """Tell whether the rule covers the request."""
        if with_operation and not _in(self.operations, request.operation):
            return False
        if not _in(self.groups, request.group):
            return False
        if exact and not _in(self.versions, request.version):
            return False
        resources = [r for r in self.resources if "/" not in r or r.startswith("*/")]
        if not any(r in ("*", "*/*") or r == request.resource for r in resources):
            return False
        if self.names and request.name not in self.names:
            return False
        if self.scope == "Cluster" and request.namespaced:
            return False
        return not (self.scope == "Namespaced" and not request.namespaced)


@dataclass(frozen=True)
class Requirement:
    """One `matchExpressions` entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether labels satisfy the requirement."""
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector; the empty selector matches everything."""

    labels: Mapping[str, str] = field(default_factory=dict)
    expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether labels satisfy the selector."""
        return all(labels.get(k) == v for k, v in self.labels.items()) and all(
            e.matches(labels) for e in self.expressions
        )


def labels_of(body: Mapping[str, Any] | None) -> dict[str, str]:
    """Return an object's labels (strings only; anything else is ignored)."""
    meta = body.get("metadata") if isinstance(body, Mapping) else None
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    if not isinstance(labels, Mapping):
        return {}
    return {str(k): v for k, v in labels.items() if isinstance(v, str)}


@dataclass(frozen=True)
class MatchResources:
    """`matchConstraints` of a policy or `matchResources` of a binding."""

    rules: tuple[ResourceRule, ...] = ()
    exclude: tuple[ResourceRule, ...] = ()
    namespace_selector: LabelSelector = field(default_factory=LabelSelector)
    object_selector: LabelSelector = field(default_factory=LabelSelector)
    exact: bool = False
    """`matchPolicy: Exact`."""

    def matches(self, request: Request, *, require_rules: bool = True) -> bool:
        """Tell whether the request is in scope (a binding without rules takes the policy's)."""
        ruled = require_rules or self.rules
        if ruled and not any(rule.matches(request, exact=self.exact) for rule in self.rules):
            return False
        if any(rule.matches(request, exact=self.exact) for rule in self.exclude):
            return False
        if not self._object_selected(request):
            return False
        return self._namespace_selected(request)

    def _object_selected(self, request: Request) -> bool:
        selector = self.object_selector
        if not selector.labels and not selector.expressions:
            return True
        return any(
            body is not None and selector.matches(labels_of(body))
            for body in (request.object, request.old_object)
        )

    def _namespace_selected(self, request: Request) -> bool:
        selector = self.namespace_selector
        if not selector.labels and not selector.expressions:
            return True
        if request.kind == "Namespace" and request.group == "":
            body = request.object if request.object is not None else request.old_object
            # The API server sets this label on every namespace before admission runs.
            own = {**labels_of(body), "kubernetes.io/metadata.name": request.name}
            return selector.matches(own)
        if not request.namespaced:
            return True
        return selector.matches(request.namespace_labels)
