"""Live reads and merge patches of Flux objects, their status and Events, Leases and Secrets.

Flux objects are Kustomizations and GitRepositories; their status is written through the status
subresource.

The one place the command line's Flux verbs and the reconciler's leader election, status and
events reach the apiserver: a thin adapter over the Kubernetes client that turns API failures
into the cluster port's typed errors (`core.cluster.port`: `NotFound`, `Conflict`,
`ClusterError`) naming the object. It knows nothing of what the callers do with the objects and
never logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cluster.port import ClusterError, Conflict, NotFound

if TYPE_CHECKING:
    from kubernetes.client.exceptions import ApiException

# The Kubernetes client is imported when a LiveCluster is made, not with this module: the command
# line names the Flux kinds on every start of `tidegate`, and the client costs most of a second.

__all__ = [
    "GIT_REPOSITORY",
    "KUSTOMIZATION",
    "FluxKind",
    "LiveCluster",
]


@dataclass(frozen=True)
class FluxKind:
    """Where a Flux kind lives in the API."""

    kind: str
    group: str
    version: str
    plural: str


KUSTOMIZATION = FluxKind("Kustomization", "kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
GIT_REPOSITORY = FluxKind("GitRepository", "source.toolkit.fluxcd.io", "v1", "gitrepositories")

_COORDINATION = "coordination.k8s.io"


class LiveCluster:
    """Flux objects and Leases of one cluster, through one authenticated API client."""

    def __init__(self, api: Any) -> None:
        from kubernetes import client as k8s

        self._api = api
        self._custom = k8s.CustomObjectsApi(api)
        self._leases = k8s.CoordinationV1Api(api)
        self._core = k8s.CoreV1Api(api)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None, context: str | None = None) -> LiveCluster:
        """Connect with `kubeconfig` (or $KUBECONFIG / ~/.kube/config, then in-cluster)."""
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        try:
            if kubeconfig is None and _in_cluster():
                configuration = k8s.Configuration()
                k8s_config.load_incluster_config(client_configuration=configuration)
                return cls(k8s.ApiClient(configuration))
            path = None if kubeconfig is None else str(kubeconfig)
            return cls(k8s_config.new_client_from_config(config_file=path, context=context))
        except (k8s_config.ConfigException, OSError, ValueError) as exc:
            where = "the default kubeconfig" if kubeconfig is None else str(kubeconfig)
            raise ClusterError(f"{where}: cannot load a cluster configuration: {exc}") from exc

    def close(self) -> None:
        """Release the client's connections."""
        self._api.close()

    def get(self, kind: FluxKind, namespace: str, name: str) -> dict[str, Any]:
        """The object, or `NotFound`."""
        what = f"{kind.kind} {namespace}/{name}"
        found: dict[str, Any] = self._call(
            what,
            self._custom.get_namespaced_custom_object,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
        )
        return found

    def list(
        self, kind: FluxKind, namespace: str | None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace`, or in all namespaces when it is None."""
        if namespace is None:
            found = self._call(
                f"{kind.kind} in all namespaces",
                self._custom.list_cluster_custom_object,
                kind.group,
                kind.version,
                kind.plural,
                label_selector=label_selector,
            )
        else:
            found = self._call(
                f"{kind.kind} in namespace {namespace}",
                self._custom.list_namespaced_custom_object,
                kind.group,
                kind.version,
                namespace,
                kind.plural,
                label_selector=label_selector,
            )
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    def merge_patch(
        self, kind: FluxKind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply a JSON merge patch (as flux's suspend/resume/reconcile do); return the result."""
        # For custom resources the client sends dict bodies as application/merge-patch+json.
        patched: dict[str, Any] = self._call(
            f"{kind.kind} {namespace}/{name}",
            self._custom.patch_namespaced_custom_object,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            patch,
        )
        return patched

    def merge_patch_status(
        self, kind: FluxKind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply a JSON merge patch to the status subresource; return the result.

        A `metadata.resourceVersion` in the patch makes it conditional (`Conflict` when the
        object moved), as Flux's optimistic-lock status patches are.
        """
        patched: dict[str, Any] = self._call(
            f"{kind.kind} {namespace}/{name} status",
            self._custom.patch_namespaced_custom_object_status,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            patch,
        )
        return patched

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        """A Secret's decoded `data`, or `NotFound`. The values never reach an error message."""
        secret = self._call(
            f"Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace
        )
        encoded = secret.data or {}
        decoded: dict[str, bytes] = {}
        for key, value in encoded.items():
            try:
                decoded[key] = base64.b64decode(value or "", validate=True)
            except (binascii.Error, ValueError):
                raise ClusterError(
                    f"Secret {namespace}/{name}: key {key!r} is not valid base64"
                ) from None
        return decoded

    def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a core/v1 Event; `Conflict` when one of that name exists."""
        name = body["metadata"]["name"]
        event = self._call(
            f"Event {namespace}/{name}", self._core.create_namespaced_event, namespace, body
        )
        return _plain(self._api, event)

    def patch_event(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch an Event (a repeat's count and last timestamp); `NotFound` if gone."""
        event = self._call(
            f"Event {namespace}/{name}", self._core.patch_namespaced_event, name, namespace, patch
        )
        return _plain(self._api, event)

    def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        """The Lease as a plain dict (spec keys in camelCase), or `NotFound`."""
        lease = self._call(
            f"Lease {namespace}/{name}", self._leases.read_namespaced_lease, name, namespace
        )
        return _plain(self._api, lease)

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Lease; `Conflict` when it already exists."""
        name = body["metadata"]["name"]
        lease = self._call(
            f"Lease {namespace}/{name}", self._leases.create_namespaced_lease, namespace, body
        )
        return _plain(self._api, lease)

    def replace_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a Lease guarded by its resourceVersion; `Conflict` when it moved."""
        name = body["metadata"]["name"]
        lease = self._call(
            f"Lease {namespace}/{name}",
            self._leases.replace_namespaced_lease,
            name,
            namespace,
            body,
        )
        return _plain(self._api, lease)

    @staticmethod
    def _call(what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException  # loaded by __init__ already

        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            reason = _reason(exc)
            code = int(exc.status or 0)
            if code == 404:
                raise NotFound(f"{what} not found", status=code, detail=reason) from None
            if code == 409:
                raise Conflict(f"{what}: conflict: {reason}", status=code, detail=reason) from None
            raise ClusterError(
                f"{what}: HTTP {code}: {reason}", status=code, detail=reason
            ) from None
        except OSError as exc:
            raise ClusterError(f"{what}: cannot reach the apiserver: {exc}") from None


def _plain(api: Any, value: Any) -> dict[str, Any]:
    plain: dict[str, Any] = api.sanitize_for_serialization(value)
    return plain


def _reason(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.reason)
    return str(body.get("message") or exc.reason)


def _in_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ and "KUBECONFIG" not in os.environ
