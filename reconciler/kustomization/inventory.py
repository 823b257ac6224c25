"""Inventory arithmetic for the pipeline: stale entries, survivors, and what to health-check.

Flux's inventory ids are `<namespace>_<name>_<group>_<kind>` (RBAC names with `:` written as
`__`); this module only compares and splits them, so prune gets exactly the entries the new build
no longer produces and `wait: true` checks exactly what was applied. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reconciler.health import ObjectRef
from reconciler.kustomization.model import ChangeEntry, InventoryEntry

__all__ = ["applied_refs", "merge_survivors", "parse_id", "stale_entries", "subject"]


def parse_id(entry: InventoryEntry) -> tuple[str, str, str, str]:
    """(namespace, name, group, kind) of an inventory id."""
    namespace, _, rest = entry.id.partition("_")
    rest, _, kind = rest.rpartition("_")
    name, _, group = rest.rpartition("_")
    if group == "rbac.authorization.k8s.io":
        name = name.replace("__", ":")
    return namespace, name, group, kind


def subject(entry: InventoryEntry) -> str:
    """`Kind/namespace/name` (`Kind/name` when cluster-scoped), as Flux's change set prints it."""
    namespace, name, _, kind = parse_id(entry)
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def stale_entries(
    old: Sequence[InventoryEntry], new: Sequence[InventoryEntry]
) -> list[InventoryEntry]:
    """Entries of `old` whose object the new inventory no longer holds (by id, as Flux)."""
    kept = {entry.id for entry in new}
    return [entry for entry in old if entry.id not in kept]


def merge_survivors(
    new: Sequence[InventoryEntry], survivors: Iterable[InventoryEntry]
) -> list[InventoryEntry]:
    """The new inventory plus entries whose delete did not go through (Flux's fix for #1664)."""
    merged = {entry.id: entry for entry in new}
    for entry in survivors:
        merged.setdefault(entry.id, entry)
    return list(merged.values())


def applied_refs(
    inventory: Sequence[InventoryEntry], changes: Sequence[ChangeEntry]
) -> list[ObjectRef]:
    """Every applied object but the skipped ones, for `wait: true`."""
    skipped = {change.subject for change in changes if change.action == "skipped"}
    refs = []
    for entry in inventory:
        if subject(entry) in skipped:
            continue
        namespace, name, group, kind = parse_id(entry)
        api_version = f"{group}/{entry.v}" if group else entry.v
        refs.append(ObjectRef(api_version, kind, name, namespace))
    return refs
