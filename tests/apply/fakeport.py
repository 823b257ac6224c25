"""A recording stand-in for the cluster port, for unit tests of its callers."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.cluster.port import FIELD_MANAGER, ApiKind, NotFound


class FakePort:
    """Objects in a dict; dry runs return the body with a resourceVersion when it exists."""

    def __init__(
        self,
        on_dry_run: Callable[[Mapping[str, Any]], None] | None = None,
        on_apply: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._on_dry_run = on_dry_run
        self._on_apply = on_apply

    def _record(self, verb: str, kind: str) -> None:
        with self._lock:
            self.calls.append((verb, kind))

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self._record("get", kind)
        try:
            return copy.deepcopy(self.objects[(kind, namespace, name)])
        except KeyError:
            raise NotFound(f"{kind}/{namespace}/{name}: not found", reason="NotFound") from None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        return []

    def apply(
        self,
        body: Mapping[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        meta = body["metadata"]
        key = (str(body["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))
        self._record("dry-run" if dry_run else "apply", key[0])
        if dry_run and self._on_dry_run is not None:
            self._on_dry_run(body)
        if not dry_run and self._on_apply is not None:
            self._on_apply(body)
        result = copy.deepcopy(dict(body))
        if key in self.objects:
            result["metadata"]["resourceVersion"] = "1"
        if not dry_run:
            with self._lock:
                self.objects[key] = copy.deepcopy(result)
            self.objects[key]["metadata"]["resourceVersion"] = "1"
            if key[0] == "Namespace":  # what the namespace controller reports at once
                self.objects[key]["status"] = {"phase": "Active"}
        return result

    def json_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        operations: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        self._record("patch", kind)
        return {}

    def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, propagation: str = ""
    ) -> bool:
        self._record("delete", kind)
        return self.objects.pop((kind, namespace, name), None) is not None

    def kind(self, api_version: str, kind: str) -> ApiKind:
        return ApiKind(api_version, kind, kind.lower() + "s", True)

    def serves(self, api_version: str, kind: str) -> bool:
        return True
