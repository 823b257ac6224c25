"""An in-memory `ObjectStore` (our own seam) for tests that do not need the API server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class MemoryStore:
    def __init__(
        self,
        objects: Sequence[Mapping[str, Any]],
        secrets: Mapping[tuple[str, str], Mapping[str, bytes]] | None = None,
    ) -> None:
        self.objects = list(objects)
        self.secrets = dict(secrets or {})

    def list_objects(self, api_version: str, kind: str) -> Sequence[Mapping[str, Any]]:
        return [o for o in self.objects if o["apiVersion"] == api_version and o["kind"] == kind]

    def get_object(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        for obj in self.list_objects(api_version, kind):
            meta = obj["metadata"]
            if meta["name"] == name and meta.get("namespace", "default") == namespace:
                return obj
        return None

    def secret_data(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get((namespace, name))
