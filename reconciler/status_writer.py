"""Sends a Kustomization's new status to the apiserver as one JSON merge patch.

`status_patch` is the pure part: the smallest merge patch from the status as last read to the
status `reconciler.status` computed (changed fields as they are, removed fields as null; lists
such as conditions and history replace the old ones whole, as merge patches do). `write_status`
sends it through the status subresource, the only place the reconciler writes a
Kustomization's status; with `lock` it carries the resourceVersion read, so a concurrent
change fails with `Conflict` instead of being overwritten. Nothing else is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from core.cluster.fluxobjects import KUSTOMIZATION, FluxKind

__all__ = ["StatusPatcher", "status_patch", "write_status"]


class StatusPatcher(Protocol):
    """Merge-patches the status subresource (`core.cluster.fluxobjects.LiveCluster` is one)."""

    def merge_patch_status(
        self, kind: FluxKind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply the patch and return the object."""
        ...


def status_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns status `before` into `after` (empty when they are equal)."""
    patch: dict[str, Any] = {key: value for key, value in after.items() if before.get(key) != value}
    patch.update({key: None for key in before if key not in after})
    return patch


def write_status(
    patcher: StatusPatcher,
    obj: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    kind: FluxKind = KUSTOMIZATION,
    lock: bool = False,
) -> dict[str, Any]:
    """Write `status` for `obj` (as last read) and return the object the apiserver returned.

    Nothing is sent when the status did not change; `obj` is returned as it is.
    """
    metadata = obj.get("metadata") or {}
    patch = status_patch(obj.get("status") or {}, status)
    if not patch:
        return dict(obj)
    body: dict[str, Any] = {"status": patch}
    if lock:
        body["metadata"] = {"resourceVersion": metadata.get("resourceVersion")}
    return patcher.merge_patch_status(
        kind, str(metadata.get("namespace", "")), str(metadata.get("name", "")), body
    )
