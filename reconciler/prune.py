"""Delete what a Kustomization no longer renders, and what its finalizer must remove.

Garbage collection (`spec.prune: true`), as kustomize-controller does it:

- It runs only after a complete apply: `prune` takes the apply's change set and refuses one that
  stopped early, so a failed apply never deletes anything.
- Candidates are the old inventory's objects the new one lacks, deleted in reverse kind order
  (webhooks first, Namespaces and CRDs last) with background propagation.
- An object is deleted only while it still carries both ownership labels with this
  Kustomization's name and namespace; otherwise another owner adopted it and it is `skipped`.
  `kustomize.toolkit.fluxcd.io/prune: disabled`, `.../reconcile: disabled` and `.../ssa: Ignore`
  (label or annotation, any case) also keep it (`skipped`). One already gone is `deleted`.
- A delete the apiserver refused leaves the object in the inventory (`survivors`), so the next
  run tries again instead of forgetting it; the errors are reported together.

Finalizer (`finalize`): `deletionPolicy` decides whether the whole inventory goes. `MirrorPrune`
follows `spec.prune`, `Delete` deletes, `WaitForTermination` deletes and waits until every object
is gone (up to the timeout), `Orphan` leaves everything; a suspended Kustomization deletes nothing.
The same ownership and exclusion rules apply. Messages name objects only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.cluster.port import ClusterError, ClusterPort, NotFound
from core.errors import TidegateError
from core.inventory import Entry, Inventory
from reconciler.apply import OWNER_NAME, OWNER_NAMESPACE, Owner
from reconciler.changeset import Action, ChangeSet, ChangeSetEntry

__all__ = [
    "DELETION_POLICIES",
    "PruneError",
    "PruneResult",
    "deletes_on_finalize",
    "finalize",
    "prune",
]

DELETION_POLICIES = ("MirrorPrune", "Delete", "WaitForTermination", "Orphan")

_EXCLUSIONS = (
    ("kustomize.toolkit.fluxcd.io/prune", "disabled"),
    ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
    ("kustomize.toolkit.fluxcd.io/ssa", "ignore"),
)


class PruneError(TidegateError):
    """Prune was refused (the apply was incomplete) or the cluster timed out a wait."""


@dataclass
class PruneResult:
    """What a prune did: the change set, the inventory it leaves, and what could not be deleted."""

    change_set: ChangeSet = field(default_factory=ChangeSet)
    inventory: Inventory = field(default_factory=Inventory)
    survivors: tuple[Entry, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether a delete failed (Flux's `PruneFailed`)."""
        return bool(self.errors)

    @property
    def message(self) -> str:
        """Flux's text for failed deletes: `delete failed, errors: ...`."""
        return "delete failed, errors: " + "; ".join(self.errors) if self.errors else ""


def prune(port: ClusterPort, old: Inventory, applied: ChangeSet, owner: Owner) -> PruneResult:
    """Delete the objects of `old` that the complete apply `applied` no longer holds.

    Raises:
        PruneError: `applied` is not the change set of a complete apply.
    """
    if not applied.complete:
        raise PruneError("prune refused: the apply did not complete, so nothing is deleted")
    new = applied.inventory()
    result = _delete_all(port, old.stale(new), owner)
    result.inventory = new.merged(result.survivors)
    return result


def deletes_on_finalize(policy: str, *, prune_enabled: bool, suspended: bool) -> bool:
    """Whether the finalizer deletes the inventory under `deletionPolicy` `policy`."""
    if suspended or policy == "Orphan":
        return False
    if policy == "MirrorPrune":
        return prune_enabled
    return policy in ("Delete", "WaitForTermination")


def finalize(
    port: ClusterPort,
    inventory: Inventory,
    owner: Owner,
    *,
    policy: str = "MirrorPrune",
    prune_enabled: bool,
    suspended: bool = False,
    timeout: float = 60.0,
    poll: float = 2.0,
) -> PruneResult:
    """What the finalizer does when the Kustomization is deleted.

    Raises:
        PruneError: `WaitForTermination` and objects were still there after `timeout` (Flux
            then reports an error event and still removes its finalizer), or the policy is
            not one of Flux's.
    """
    if policy not in DELETION_POLICIES:
        raise PruneError(f"spec.deletionPolicy: {policy!r} is not one of {DELETION_POLICIES}")
    if not inventory.entries or not deletes_on_finalize(
        policy, prune_enabled=prune_enabled, suspended=suspended
    ):
        return PruneResult(inventory=inventory)
    ordered = inventory.stale(Inventory())
    result = _delete_all(port, ordered, owner)
    result.inventory = Inventory(result.survivors)
    if policy == "WaitForTermination" and not result.failed:
        deleted = [e for e in ordered if _action(result.change_set, e) is Action.DELETED]
        _wait_terminated(port, deleted, timeout, poll)
    return result


def _delete_all(port: ClusterPort, entries: Sequence[Entry], owner: Owner) -> PruneResult:
    result = PruneResult()
    survivors: list[Entry] = []
    errors: list[str] = []
    # Reverse kind order: what depends on a Namespace or CRD goes before it.
    for entry in reversed(entries):
        try:
            action = _delete_one(port, entry, owner)
        except ClusterError as exc:
            survivors.append(entry)
            errors.append(f"{entry.ref}: {exc.detail}")
            continue
        result.change_set.add(ChangeSetEntry(entry.ref, entry.version, action))
    result.change_set.complete = not errors
    result.survivors = tuple(survivors)
    result.errors = tuple(errors)
    return result


def _delete_one(port: ClusterPort, entry: Entry, owner: Owner) -> Action:
    ref = entry.ref
    try:
        live = port.get(entry.api_version, ref.kind, ref.namespace, ref.name)
    except NotFound:
        return Action.DELETED
    if not _owned(live, owner) or _excluded(live):
        return Action.SKIPPED
    port.delete(entry.api_version, ref.kind, ref.namespace, ref.name, propagation="Background")
    return Action.DELETED


def _owned(live: Mapping[str, Any], owner: Owner) -> bool:
    labels = (live.get("metadata") or {}).get("labels") or {}
    return labels.get(OWNER_NAME) == owner.name and labels.get(OWNER_NAMESPACE) == owner.namespace


def _excluded(live: Mapping[str, Any]) -> bool:
    meta = live.get("metadata") or {}
    for section in ("labels", "annotations"):
        values = meta.get(section) or {}
        for key, value in _EXCLUSIONS:
            if str(values.get(key, "")).lower() == value:
                return True
    return False


def _action(change_set: ChangeSet, entry: Entry) -> Action | None:
    for item in change_set.entries:
        if item.ref == entry.ref:
            return item.action
    return None


def _wait_terminated(
    port: ClusterPort, entries: Sequence[Entry], timeout: float, poll: float
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(entries)
    while True:
        still = []
        for entry in pending:
            ref = entry.ref
            try:
                port.get(entry.api_version, ref.kind, ref.namespace, ref.name)
            except NotFound:
                continue
            still.append(entry)
        if not still:
            return
        if time.monotonic() >= deadline:
            names = ", ".join(str(e.ref) for e in still)
            raise PruneError(f"timeout after {timeout:g}s waiting for termination of: {names}")
        pending = still
        time.sleep(poll)
