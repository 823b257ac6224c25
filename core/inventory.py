"""Flux's Kustomization inventory: `status.inventory.entries[{id, v}]`, read, written and compared.

An entry's id is cli-utils' `ObjMetadata` string, `<namespace>_<name>_<group>_<kind>`: the core
group and cluster scope are empty fields, and a `:` in the name of an RBAC object is written
`__`. `v` is the version alone (`v1`, `v2`), not the group. The entries keep the order of the
apply's change set, as kustomize-controller writes them; `stale` (what prune deletes) comes in
Flux's kind order, and prune walks it backwards.

Parsing is strict: an inventory is read from a cluster object anyone with write access to its
status can change, so a malformed entry is an error naming the entry, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.model import ObjectRef

__all__ = [
    "Entry",
    "Inventory",
    "kind_order",
    "parse_id",
    "sort_key",
]

_RBAC_GROUP = "rbac.authorization.k8s.io"
_RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})

# fluxcd/pkg ssa's `ReconcileOrder`: these kinds first, in this order; the webhooks last; every
# other kind in between, by group then kind.
_FIRST = (
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterClass",
    "RuntimeClass",
    "PriorityClass",
    "StorageClass",
    "VolumeSnapshotClass",
    "IngressClass",
    "GatewayClass",
    "ClusterRoleBinding",
    "ResourceQuota",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_RANK = {kind: index - len(_FIRST) for index, kind in enumerate(_FIRST)} | {
    kind: index + 1 for index, kind in enumerate(_LAST)
}


def kind_order(kind: str) -> int:
    """Flux's rank of a kind: negative for the kinds it puts first, 0 for unlisted kinds."""
    return _RANK.get(kind, 0)


def sort_key(ref: ObjectRef) -> tuple[int, str, str, str, str]:
    """Flux's apply order: kind rank, then group, kind, namespace and name."""
    return (kind_order(ref.kind), ref.group, ref.kind, ref.namespace, ref.name)


def parse_id(entry_id: str) -> ObjectRef:
    """The object an inventory id names, as cli-utils' `ParseObjMetadata` reads it.

    Raises:
        InputError: the id does not have the four fields, or a field is empty that may not be.
    """
    first = entry_id.find("_")
    last = entry_id.rfind("_")
    if first < 0 or last <= first:
        raise InputError(f"inventory entry {entry_id!r}: not <namespace>_<name>_<group>_<kind>")
    namespace, rest, kind = entry_id[:first], entry_id[first + 1 : last], entry_id[last + 1 :]
    split = rest.rfind("_")
    if split < 0:
        raise InputError(f"inventory entry {entry_id!r}: not <namespace>_<name>_<group>_<kind>")
    name, group = rest[:split], rest[split + 1 :]
    if group == _RBAC_GROUP and kind in _RBAC_KINDS:
        name = name.replace("__", ":")
    if not name or not kind or "_" in name:
        raise InputError(f"inventory entry {entry_id!r}: not <namespace>_<name>_<group>_<kind>")
    return ObjectRef(group=group, kind=kind, namespace=namespace, name=name)


@dataclass(frozen=True)
class Entry:
    """One inventory entry: the object and the API version it was applied as."""

    ref: ObjectRef
    version: str

    @property
    def id(self) -> str:
        """Flux's id of the object."""
        return self.ref.inventory_id

    @property
    def api_version(self) -> str:
        """`group/version`, or the version alone for the core group."""
        return f"{self.ref.group}/{self.version}" if self.ref.group else self.version

    def to_json(self) -> dict[str, str]:
        """The entry as `status.inventory.entries[]` holds it."""
        return {"id": self.id, "v": self.version}


@dataclass(frozen=True)
class Inventory:
    """The objects a Kustomization applied last, in change-set order, without duplicates."""

    entries: tuple[Entry, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> Inventory:
        """An inventory of `entries`, keeping the first of any repeated object."""
        seen: set[ObjectRef] = set()
        kept: list[Entry] = []
        for entry in entries:
            if entry.ref not in seen:
                seen.add(entry.ref)
                kept.append(entry)
        return cls(tuple(kept))

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Inventory:
        """Read `status.inventory` of a Kustomization (no inventory: an empty one).

        Raises:
            InputError: an entry is not an object with a valid `id` and a `v`.
        """
        inventory = (status or {}).get("inventory")
        if inventory is None:
            return cls()
        if not isinstance(inventory, Mapping):
            raise InputError("status.inventory: not an object")
        raw = inventory.get("entries") or []
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise InputError("status.inventory.entries: not a list")
        entries = []
        for index, item in enumerate(raw):
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                raise InputError(f"status.inventory.entries[{index}]: no id")
            version = item.get("v")
            if not isinstance(version, str) or not version:
                raise InputError(f"status.inventory.entries[{index}] ({item['id']}): no v")
            entries.append(Entry(parse_id(item["id"]), version))
        return cls.of(entries)

    def to_status(self) -> dict[str, Any]:
        """The inventory as `status.inventory` holds it."""
        return {"entries": [entry.to_json() for entry in self.entries]}

    @property
    def refs(self) -> frozenset[ObjectRef]:
        """The objects in the inventory."""
        return frozenset(entry.ref for entry in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, ref: object) -> bool:
        return ref in self.refs

    def stale(self, new: Inventory) -> tuple[Entry, ...]:
        """Entries of this (old) inventory that `new` no longer holds, in Flux's kind order."""
        keep = new.refs
        return tuple(sorted((e for e in self.entries if e.ref not in keep), key=_entry_key))

    def merged(self, survivors: Iterable[Entry]) -> Inventory:
        """This inventory plus `survivors` it lacks (objects a prune could not delete)."""
        return Inventory.of((*self.entries, *survivors))


def _entry_key(entry: Entry) -> tuple[int, str, str, str, str]:
    return sort_key(entry.ref)
