"""The cluster port over the Kubernetes client: any kind, by apiVersion and kind.

`LiveCluster` implements `core.cluster.port.ClusterPort` with the Kubernetes client's raw
request call, so one code path serves built-in kinds and custom resources alike. Discovery is a
small cached RESTMapper: the resource list of each group-version is read once and read again
only when a kind is missing from it (a CRD installed since), so a steady reconcile costs no
discovery requests. `impersonating` gives a view of the same cluster as a ServiceAccount, as
Flux's `spec.serviceAccountName` does, sharing the discovery cache.

It must never log or quote a request or response body: responses are read raw (the client's
own debug log of bodies is bypassed), and errors carry only the apiserver's `Status` message,
reason and field paths, each naming the object. It knows nothing of Flux or of what callers do
with the objects.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from core.cluster.port import (
    FIELD_MANAGER,
    ApiKind,
    ClusterError,
    Conflict,
    Forbidden,
    ImmutableField,
    Invalid,
    NotFound,
    Propagation,
    UnknownKind,
)
from core.cluster.transport import Transport, TransportError

__all__ = ["LiveCluster", "connect", "object_name", "service_account_user"]

_TIMEOUT = (10.0, 60.0)
"""Connect and read timeouts of one request, in seconds."""

# Phrases with which the apiserver's validation says a field may only be set at creation. Only
# these make a forced apply recreate an object: Flux recreates on any 409/422, which turns a plain
# typo into a delete (reference: recreate only on a genuine immutable-field error).
_IMMUTABLE_PHRASES = (
    "field is immutable",
    "is immutable",
    "may not change once set",
    "updates to statefulset spec for fields other than",
)


def service_account_user(namespace: str, name: str) -> str:
    """The user name a ServiceAccount authenticates as."""
    return f"system:serviceaccount:{namespace}:{name}"


def object_name(kind: str, namespace: str, name: str) -> str:
    """`Kind/namespace/name`, or `Kind/name` for a cluster-scoped object, as Flux writes it."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def connect(kubeconfig: Path | None, context: str | None = None) -> Any:
    """An `ApiClient` from `kubeconfig` (or $KUBECONFIG, ~/.kube/config, in-cluster)."""
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = k8s.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)
            return k8s.ApiClient(configuration)
        path = None if kubeconfig is None else str(kubeconfig)
        return k8s_config.new_client_from_config(config_file=path, context=context)
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        where = "the default kubeconfig" if kubeconfig is None else str(kubeconfig)
        raise ClusterError(f"{where}: cannot load a cluster configuration: {exc}") from exc


class _Shared:
    """What the views of one cluster share: discovery, and one view per impersonated user."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fetching = threading.Lock()
        self.kinds: dict[str, dict[str, ApiKind]] = {}
        self.views: dict[str, LiveCluster] = {}


class LiveCluster:
    """One cluster, through one authenticated client (optionally impersonating a user)."""

    def __init__(self, api: Any, *, _shared: _Shared | None = None, _user: str = "") -> None:
        self._api = api
        self._transport = Transport.for_client(api, _TIMEOUT)
        self._discovery = _shared or _Shared()
        self._user = _user
        self._count_lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        """Requests sent, by verb (`get`, `list`, `apply`, `dry-run`, `patch`, `delete`,
        `discovery`): what a no-op reconcile costs is countable."""

    def impersonating(self, user: str) -> LiveCluster:
        """The same cluster as `user` sees it (for a ServiceAccount: `service_account_user`).

        Views are kept per user, so a reconcile per interval reuses one connection pool instead
        of opening a new one each time; closing the cluster closes them all.
        """
        with self._discovery.lock:
            view = self._discovery.views.get(user)
            if view is None:
                api = k8s.ApiClient(self._api.configuration, "Impersonate-User", user)
                view = LiveCluster(api, _shared=self._discovery, _user=user)
                self._discovery.views[user] = view
        return view

    def close(self) -> None:
        """Release the client's connections (and, on the cluster itself, every view's)."""
        with self._discovery.lock:
            if self._user:
                self._discovery.views.pop(self._user, None)
                views = []
            else:
                views = list(self._discovery.views.values())
                self._discovery.views.clear()
        for view in views:
            view._close_connections()
        self._close_connections()

    def _close_connections(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._api.close()

    # Discovery

    def kind(self, api_version: str, kind: str) -> ApiKind:
        """Where `kind` is served, or `UnknownKind`; a miss reads the group-version again."""
        with self._discovery.lock:
            known = self._discovery.kinds.get(api_version)
        if known is not None and kind in known:
            return known[kind]
        # One reader at a time: concurrent misses (a stage's dry runs) wait for the first one's
        # answer instead of each asking the apiserver.
        with self._discovery.fetching:
            with self._discovery.lock:
                cached = self._discovery.kinds.get(api_version)
            if cached is not None and cached is not known and kind in cached:
                return cached[kind]
            known = self._resources(api_version)
            with self._discovery.lock:
                self._discovery.kinds[api_version] = known
        if kind not in known:
            raise UnknownKind(
                f'no matches for kind "{kind}" in version "{api_version}"',
                status=404,
                reason="NotFound",
            )
        return known[kind]

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the apiserver serves `kind` in `api_version`."""
        try:
            self.kind(api_version, kind)
        except UnknownKind:
            return False
        return True

    def _resources(self, api_version: str) -> dict[str, ApiKind]:
        path = "/api/v1" if api_version == "v1" else f"/apis/{_segment_path(api_version)}"
        try:
            listing = self._request("discovery", "GET", path, what=f"API version {api_version}")
        except NotFound:
            return {}
        found: dict[str, ApiKind] = {}
        for resource in listing.get("resources") or []:
            name = str(resource.get("name", ""))
            if not name or "/" in name:  # subresources such as deployments/scale
                continue
            kind = str(resource.get("kind", ""))
            found[kind] = ApiKind(api_version, kind, name, bool(resource.get("namespaced")))
        return found

    # Reads

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The object, or `NotFound`."""
        path = self._object_path(api_version, kind, namespace, name)
        return self._request("get", "GET", path, what=object_name(kind, namespace, name))

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        """Objects of a kind in `namespace` (every namespace when None), apiVersion and kind set."""
        resource = self.kind(api_version, kind)
        path = self._collection_path(resource, namespace if resource.namespaced else None)
        query = [("labelSelector", label_selector)] if label_selector else []
        where = f"{kind} in namespace {namespace}" if namespace else f"{kind} in all namespaces"
        found = self._request("list", "GET", path, what=where, query=query)
        items: list[dict[str, Any]] = found.get("items") or []
        # A list's items carry no apiVersion/kind; put them back so each is a whole object.
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    # Writes

    def apply(
        self,
        body: Mapping[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply `body` (ownership forced unless `force` is False)."""
        api_version, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        path = self._object_path(api_version, kind, namespace, name)
        query = [("fieldManager", field_manager), ("force", "true" if force else "false")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self._request(
            "dry-run" if dry_run else "apply",
            "PATCH",
            path,
            what=object_name(kind, namespace, name),
            query=query,
            body=dict(body),
            content_type="application/apply-patch+yaml",
        )

    def json_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        operations: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Apply an RFC 6902 JSON patch to the object."""
        path = self._object_path(api_version, kind, namespace, name)
        return self._request(
            "patch",
            "PATCH",
            path,
            what=object_name(kind, namespace, name),
            body=[dict(op) for op in operations],
            content_type="application/json-patch+json",
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        propagation: Propagation = "Background",
    ) -> bool:
        """Delete the object with `propagation`; False when it was already gone."""
        path = self._object_path(api_version, kind, namespace, name)
        try:
            self._request(
                "delete",
                "DELETE",
                path,
                what=object_name(kind, namespace, name),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": propagation,
                },
            )
        except NotFound:
            return False
        return True

    # Plumbing

    def _object_path(self, api_version: str, kind: str, namespace: str, name: str) -> str:
        resource = self.kind(api_version, kind)
        if resource.namespaced and not namespace:
            raise Invalid(
                f"{object_name(kind, namespace, name)} namespace not specified",
                status=0,
                reason="NamespaceNotSpecified",
                fields=("metadata.namespace",),
            )
        if not name:
            raise Invalid(f"{kind} without a name", status=0, fields=("metadata.name",))
        collection = self._collection_path(resource, namespace if resource.namespaced else None)
        return f"{collection}/{quote(name, safe='')}"

    @staticmethod
    def _collection_path(resource: ApiKind, namespace: str | None) -> str:
        version = resource.api_version
        root = "/api/v1" if version == "v1" else f"/apis/{_segment_path(version)}"
        if namespace:
            root = f"{root}/namespaces/{quote(namespace, safe='')}"
        return f"{root}/{resource.plural}"

    def _request(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        what: str,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        with self._count_lock:
            self.requests[verb] += 1
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if self._transport is not None:
            data = self._send(self._transport, method, path, what, query, headers, body)
        else:
            data = self._call(method, path, what, query, headers, body)
        try:
            parsed = json.loads(data or b"{}")
        except ValueError:
            raise ClusterError(f"{what}: the apiserver sent a response that is not JSON") from None
        if not isinstance(parsed, dict):
            raise ClusterError(f"{what}: the apiserver sent a response that is not an object")
        return parsed

    @staticmethod
    def _send(
        transport: Transport,
        method: str,
        path: str,
        what: str,
        query: Sequence[tuple[str, str]],
        headers: dict[str, str],
        body: Any,
    ) -> bytes:
        """The request over the lean transport; the answer's body, or the refusal raised."""
        payload = None if body is None else json.dumps(body).encode()
        try:
            response = transport.request(method, path, query=query, headers=headers, body=payload)
        except TransportError as exc:
            raise ClusterError(f"{what}: cannot reach the apiserver: {exc}") from None
        if not 200 <= response.status < 300:
            raise _translate(what, response.status, response.reason, response.body)
        return response.body

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        query: Sequence[tuple[str, str]],
        headers: dict[str, str],
        body: Any,
    ) -> bytes:
        """The request through the Kubernetes client (a proxy, or TLS settings of its own)."""
        try:
            response = self._api.call_api(
                path,
                method,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=_TIMEOUT,
            )
        except ApiException as exc:
            raise _translate(what, int(exc.status or 0), str(exc.reason or ""), exc.body) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterError(
                f"{what}: cannot reach the apiserver: {type(exc).__name__}"
            ) from None
        data: bytes = response.data or b""
        return data


def _segment_path(api_version: str) -> str:
    """`group/version` with each part escaped (an apiVersion comes from hostile input)."""
    return "/".join(quote(part, safe="") for part in api_version.split("/", 1))


def _status(body: bytes | str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _translate(what: str, code: int, phrase: str, body: bytes | str | None) -> ClusterError:
    """Turn an apiserver refusal into a typed error that names `what` and quotes no body.

    Only the `Status` object's message, reason and causes are used: a response that is not a
    Status (a proxy's page) contributes its HTTP reason phrase alone.
    """
    status = _status(body)
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or phrase or "request failed")
    details = status.get("details") if isinstance(status.get("details"), dict) else {}
    causes = [c for c in (details or {}).get("causes") or [] if isinstance(c, dict)]
    fields = tuple(str(c["field"]) for c in causes if c.get("field"))
    text = f"{what}: {message}"
    if code == 404:
        return NotFound(text, status=code, reason=reason or "NotFound", detail=message)
    if code == 403:
        return Forbidden(text, status=code, reason=reason or "Forbidden", detail=message)
    if code == 409:
        return Conflict(text, status=code, reason=reason or "Conflict", detail=message)
    if code in (400, 422) or reason == "Invalid":
        reason = reason or ("Invalid" if code == 422 else "BadRequest")
        kind = ImmutableField if _immutable(message, causes) else Invalid
        return kind(text, status=code, reason=reason, detail=message, fields=fields)
    return ClusterError(text, status=code, reason=reason, detail=message)


def _immutable(message: str, causes: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every reason the apiserver gave is a field that may only be set at creation."""
    texts = [str(c.get("message", "")) for c in causes] or [message]
    return all(any(p in text.lower() for p in _IMMUTABLE_PHRASES) for text in texts)
