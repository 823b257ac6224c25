"""The pipeline's `Engines` on a real cluster: staged apply, prune, finalizer and health checks.

`LiveEngines` wraps one cluster port (`core.cluster.live.LiveCluster`) and runs, as the identity
Flux would use: the controller's own, or `system:serviceaccount:<ns>:<serviceAccountName>`
impersonated when the Kustomization (or `--default-service-account`) names one, so RBAC denials
come from the API server exactly as they do for kustomize-controller. The work itself is the
shared modules': `reconciler.apply` (staged server-side apply, drift, change set),
`reconciler.prune` (garbage collection and the deletion policies) and `reconciler.health`
(kstatus polling, given up when the process stops). This module translates their results into
the pipeline's vocabulary and their errors into messages; it holds no policy of its own and
never sees object bodies beyond passing them on.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from core.cluster.live import LiveCluster, service_account_user
from core.cluster.port import ClusterError, ClusterPort, NotFound
from core.errors import TidegateError
from core.inventory import Entry, Inventory, parse_id
from reconciler import apply as apply_engine
from reconciler import prune as prune_engine
from reconciler.changeset import ChangeSet
from reconciler.drift_ignore import IgnoreRule
from reconciler.health import ClusterReader, ExprRules, HealthChecker, HealthReport, ObjectRef
from reconciler.kustomization.deps import Applied, Owner, Pruned
from reconciler.kustomization.model import ChangeEntry, InventoryEntry

__all__ = ["LiveEngines", "PortReader"]


class PortReader:
    """The pipeline's object reads over a cluster port: a missing object or kind is None."""

    def __init__(self, port: ClusterPort) -> None:
        self._port = port

    def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        """The object, or None when it (or its kind) does not exist."""
        try:
            return self._port.get(api_version, kind, namespace, name)
        except NotFound:
            return None


class LiveEngines:
    """Apply, prune, finalize and wait on one cluster, impersonating where asked."""

    def __init__(
        self,
        cluster: LiveCluster,
        *,
        health_interval: float = 5.0,
        stop: threading.Event | None = None,
    ) -> None:
        self._cluster = cluster
        self._health_interval = dt.timedelta(seconds=health_interval)
        self._stop = stop

    def port(self, namespace: str, service_account: str | None) -> ClusterPort:
        """The cluster as the Kustomization's identity sees it."""
        if not service_account:
            return self._cluster
        return self._cluster.impersonating(service_account_user(namespace, service_account))

    def apply(
        self,
        objects: Sequence[Any],
        *,
        owner: Owner,
        service_account: str | None,
        force: bool,
        ignore: Sequence[IgnoreRule] = (),
    ) -> Applied:
        """Staged server-side apply; a refusal comes back as `Applied.error`."""
        port = self.port(owner.namespace, service_account)
        try:
            change_set = apply_engine.apply_objects(
                port,
                objects,
                owner=apply_engine.Owner(owner.name, owner.namespace),
                options=apply_engine.Options(force=force, ignore=tuple(ignore)),
            )
        except apply_engine.ApplyError as exc:
            return Applied(_changes(exc.change_set), (), str(exc), exc.change_set)
        except TidegateError as exc:
            return Applied((), (), str(exc))
        entries = tuple(_entry(e) for e in change_set.inventory().entries)
        return Applied(_changes(change_set), entries, change_set=change_set)

    def prune(
        self,
        stale: Sequence[InventoryEntry],
        *,
        applied: Applied,
        owner: Owner,
        service_account: str | None,
    ) -> Pruned:
        """Delete `stale`; refused, deleting nothing, unless `applied` is a complete apply."""
        port = self.port(owner.namespace, service_account)
        # The apply's own change set: the prune engine enforces its rule (no prune after an
        # incomplete apply) here too, not only the pipeline. An apply without one is not trusted.
        change_set = applied.change_set if applied.change_set is not None else ChangeSet()
        try:
            result = prune_engine.prune(
                port, _inventory(stale), change_set, apply_engine.Owner(owner.name, owner.namespace)
            )
        except TidegateError as exc:
            return Pruned((), tuple(stale), str(exc))
        return Pruned(
            _changes(result.change_set),
            tuple(_entry(e) for e in result.survivors),
            result.message or None,
        )

    def finalize(
        self,
        inventory: Sequence[InventoryEntry],
        *,
        owner: Owner,
        service_account: str | None,
        policy: str,
        prune_enabled: bool,
        suspended: bool,
        timeout: float,
    ) -> Pruned:
        """What the finalizer deletes under `deletionPolicy`."""
        port = self.port(owner.namespace, service_account)
        try:
            result = prune_engine.finalize(
                port,
                _inventory(inventory),
                apply_engine.Owner(owner.name, owner.namespace),
                policy=policy,
                prune_enabled=prune_enabled,
                suspended=suspended,
                timeout=timeout,
            )
        except TidegateError as exc:
            return Pruned((), tuple(inventory), str(exc))
        return Pruned(
            _changes(result.change_set),
            tuple(_entry(e) for e in result.survivors),
            result.message or None,
        )

    def wait(
        self,
        targets: Sequence[ObjectRef],
        *,
        rules: ExprRules,
        timeout: dt.timedelta,
        owner: Owner,
        service_account: str | None,
        gone_is_current: frozenset[ObjectRef] = frozenset(),
    ) -> HealthReport:
        """Poll `targets` with kstatus until Current, failed, or `timeout`.

        Raises:
            CancelledError: the process began to stop during the wait (`stop` was set).
        """
        port = self.port(owner.namespace, service_account)
        checker = HealthChecker(
            ClusterReader(port), rules, interval=self._health_interval, stop=self._stop
        )
        return checker.wait(targets, timeout, gone_is_current=gone_is_current)


def _changes(change_set: ChangeSet) -> tuple[ChangeEntry, ...]:
    return tuple(ChangeEntry(e.subject, str(e.action)) for e in change_set.entries)


def _entry(entry: Entry) -> InventoryEntry:
    return InventoryEntry(entry.id, entry.version)


def _inventory(entries: Sequence[InventoryEntry]) -> Inventory:
    try:
        return Inventory.of(Entry(parse_id(e.id), e.v) for e in entries)
    except TidegateError as exc:  # an inventory written by someone else, unreadable
        raise ClusterError(f"status.inventory: {exc}") from None
