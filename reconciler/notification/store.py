"""The notifier's `ObjectStore` over the live cluster: Alerts, Providers and their Secrets.

Reads go to the apiserver through the cluster adapters (`core.cluster.live` for any kind,
`core.cluster.fluxobjects` for Secrets, whose values never reach an error message). A cluster
without the notification CRDs has no Alerts, so nothing is sent; an object or Secret that does
not exist is None, as the port says. Read only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from core.cluster.port import NotFound, UnknownKind

__all__ = ["ClusterStore"]


class _Objects(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]: ...

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]: ...


class _Secrets(Protocol):
    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]: ...


class ClusterStore:
    """Notification objects read from the cluster."""

    def __init__(self, objects: _Objects, secrets: _Secrets) -> None:
        self._objects = objects
        self._secrets = secrets

    def list_objects(self, api_version: str, kind: str) -> Sequence[Mapping[str, Any]]:
        """Every object of the kind, in all namespaces; none when the kind is not served."""
        try:
            return self._objects.list(api_version, kind)
        except UnknownKind:
            return []

    def get_object(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        """One object, or None when it (or its kind) does not exist."""
        try:
            return self._objects.get(api_version, kind, namespace, name)
        except NotFound:
            return None

    def secret_data(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """A Secret's decoded data, or None when it does not exist."""
        try:
            return self._secrets.secret_data(namespace, name)
        except NotFound:
            return None
