"""One reconcile of one Flux Kustomization, in kustomize-controller's order, one named step a line.

`reconcile_kustomization(obj, deps)` is the call the loop makes. It reads the object, runs the
steps (source -> dependsOn -> artifact -> variables -> build -> apply -> inventory -> prune ->
health) and returns an `Outcome`: the whole new `status`, the finalizer change and when to run
again (interval or retryInterval, with Flux's jitter). Each step fails with Flux's reason
(`ArtifactFailed`, `DependencyNotReady`, `BuildFailed`, `ReconciliationFailed`, `PruneFailed`,
`HealthCheckFailed`, `AccessDenied`); the status then says so as Flux writes it (Ready=False,
Reconciling=True/ProgressingWithRetry, or Stalled=True for configuration errors) and nothing is
pruned. Prune runs only after a complete apply and only with `spec.prune`.

Also as Flux: `suspend` skips the run (the status only echoes `reconcile.fluxcd.io/requestedAt`),
a new object first gets the finalizer `finalizers.fluxcd.io`, and deletion runs
`spec.deletionPolicy` over the inventory before the finalizer is removed. Where Flux waits
forever on a `dependsOn` cycle, the cycle is reported as Stalled.

This module does not write to the cluster itself (the loop writes the outcome) and never sees a
Secret value: the build's cleartext objects pass through it opaquely to the apply step, and every
message it handles is already scrubbed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import TidegateError
from reconciler.kustomization.artifact import check_path
from reconciler.kustomization.build import Built, build
from reconciler.kustomization.conditions import (
    remove_condition,
    set_condition,
    upsert_history,
)
from reconciler.kustomization.dependencies import check_dependencies
from reconciler.kustomization.deps import Applied, Deps, Owner
from reconciler.kustomization.durations import format_duration
from reconciler.kustomization.inventory import merge_survivors, stale_entries, wait_targets
from reconciler.kustomization.model import (
    ChangeEntry,
    FinalizerChange,
    InventoryEntry,
    Outcome,
    Reason,
    StepFailed,
)
from reconciler.kustomization.source import Artifact, resolve_artifact
from reconciler.kustomization.spec import ReconcileSpec, read_spec
from reconciler.kustomization.variables import read_variables

__all__ = ["reconcile_kustomization"]

GROUP = "kustomize.toolkit.fluxcd.io"
TERMINAL_PREFIX = "Reconciliation failed terminally due to configuration error: "
_QUIET_ACTIONS = ("unchanged", "skipped")


def reconcile_kustomization(obj: Mapping[str, Any], deps: Deps) -> Outcome:
    """Reconcile `obj` once and return what to write and when to come back (see module doc)."""
    return _Run(obj, deps).execute()


class _Run:
    """The state of one reconcile: the status being built and the time it started."""

    def __init__(self, obj: Mapping[str, Any], deps: Deps) -> None:
        self.obj = obj
        self.deps = deps
        self.status: dict[str, Any] = copy.deepcopy(dict(obj.get("status") or {}))
        self.started = deps.clock.monotonic()
        self.generation = int((obj.get("metadata") or {}).get("generation") or 0)
        self.changes: list[ChangeEntry] = []

    def execute(self) -> Outcome:
        try:
            spec = read_spec(self.obj)
        except TidegateError as exc:
            return self._invalid(str(exc))
        self._handled(spec)
        if spec.deleting:
            return self._finalize(spec)
        finalizer = None if spec.has_finalizer else FinalizerChange.ADD
        if spec.build.suspend:
            return Outcome(self.status, None, finalizer, reason="Suspended")
        artifact: Artifact | None = None
        built: Built | None = None
        try:
            artifact = self._source(spec)
            self._depends_on(spec, artifact)
            self._progressing(spec, "Fetching manifests", artifact)
            tree = self.deps.artifacts.tree(
                artifact, requeue_dependency=self.deps.options.requeue_dependency
            )
            self.status["lastAttemptedRevision"] = artifact.revision
            check_path(tree, spec.build.path)
            self._progressing(spec, "Building manifests", artifact)
            variables = read_variables(spec.build, self.deps.objects)
            built = build(
                spec.build,
                tree,
                variables,
                kustomize=self.deps.options.kustomize,
                work_root=self.deps.options.work_root,
            )
            self._progressing(spec, "Detecting drift", artifact)
            applied = self._apply(spec, built, artifact)
            new_inventory = self._inventory(applied)
            self._prune(spec, new_inventory, artifact)
            self._health(spec, artifact, applied)
        except StepFailed as failure:
            return self._kept_transitions(self._failed(spec, failure, artifact, built, finalizer))
        return self._kept_transitions(self._succeeded(spec, artifact, built, finalizer))

    # --- steps ------------------------------------------------------------------------------

    def _source(self, spec: ReconcileSpec) -> Artifact:
        options = self.deps.options
        return resolve_artifact(
            spec.namespace,
            spec.build.source,
            self.deps.objects,
            no_cross_namespace_refs=options.no_cross_namespace_refs,
            retry_interval=spec.retry_interval,
            requeue_dependency=options.requeue_dependency,
        )

    def _depends_on(self, spec: ReconcileSpec, artifact: Artifact) -> None:
        if not spec.build.depends_on:
            return
        requeue = self.deps.options.requeue_dependency
        try:
            check_dependencies(
                spec.build.unit,
                spec.build.depends_on,
                spec.build.source,
                artifact.revision,
                self.deps.objects,
                requeue=requeue,
            )
        except StepFailed as failure:
            if failure.reason is Reason.DEPENDENCY_NOT_READY:
                self._event(
                    "info",
                    failure.reason,
                    "Dependencies do not meet ready condition, retrying in "
                    f"{format_duration(requeue)}",
                    artifact,
                )
            raise

    def _apply(self, spec: ReconcileSpec, built: Built, artifact: Artifact) -> Applied:
        applied = self.deps.engines.apply(
            built.objects,
            owner=Owner(spec.name, spec.namespace),
            service_account=self._identity(spec),
            force=spec.force,
        )
        self._announce(applied.changes, artifact)
        if applied.error is not None:
            raise StepFailed(Reason.RECONCILIATION_FAILED, applied.error)
        return applied

    def _inventory(self, applied: Applied) -> list[InventoryEntry]:
        # As Flux: the new inventory is written before pruning, so a failed prune still records
        # what the build produced (survivors are merged back in by `_prune`).
        new = sorted(applied.inventory)
        self._set_inventory(new)
        return new

    def _prune(self, spec: ReconcileSpec, new: list[InventoryEntry], artifact: Artifact) -> None:
        if not spec.build.prune:
            return
        stale = stale_entries(self._old_inventory(), new)
        if not stale:
            return
        pruned = self.deps.engines.prune(
            stale, owner=Owner(spec.name, spec.namespace), service_account=self._identity(spec)
        )
        self._announce(pruned.changes, artifact)
        if pruned.survivors:
            self._set_inventory(merge_survivors(new, pruned.survivors))
        if pruned.error is not None:
            raise StepFailed(Reason.PRUNE_FAILED, pruned.error)

    def _health(self, spec: ReconcileSpec, artifact: Artifact, applied: Applied) -> None:
        if spec.wait:
            targets = wait_targets(applied.inventory, applied.changes)
        else:
            targets = [(h.api_version, h.kind, h.namespace, h.name) for h in spec.health_checks]
        if not spec.wait and not spec.health_checks:
            self._conditions(lambda c: remove_condition(c, "Healthy"))
            return
        self._progressing(spec, "Running health checks", artifact)
        self._condition("Healthy", "Unknown", Reason.PROGRESSING, "Health check in progress")
        began = self.deps.clock.monotonic()
        error = self.deps.engines.wait(
            targets, timeout=spec.timeout, service_account=self._identity(spec)
        )
        if error is not None:
            self._condition("Healthy", "False", Reason.HEALTH_CHECK_FAILED, error)
            raise StepFailed(Reason.HEALTH_CHECK_FAILED, error)
        took = format_duration(round(self.deps.clock.monotonic() - began, 6))
        self._condition(
            "Healthy", "True", Reason.HEALTH_SUCCEEDED, f"Health check passed in {took}"
        )

    # --- endings ----------------------------------------------------------------------------

    def _succeeded(
        self,
        spec: ReconcileSpec,
        artifact: Artifact,
        built: Built,
        finalizer: FinalizerChange | None,
    ) -> Outcome:
        message = f"Applied revision: {artifact.revision}"
        self._condition("Ready", "True", Reason.SUCCEEDED, message)
        self._conditions(lambda c: remove_condition(remove_condition(c, "Reconciling"), "Stalled"))
        self.status["observedGeneration"] = self.generation
        self.status["lastAppliedRevision"] = artifact.revision
        if artifact.origin_revision:
            self.status["lastAppliedOriginRevision"] = artifact.origin_revision
        self._history(built, Reason.SUCCEEDED, artifact)
        self._event(
            "info",
            Reason.SUCCEEDED,
            f"Reconciliation finished in {self._elapsed()}, next run in "
            f"{format_duration(spec.interval)}",
            artifact,
            commit_status=True,
        )
        return Outcome(
            self.status,
            self._jitter(spec.interval),
            finalizer,
            ready=True,
            reason=Reason.SUCCEEDED,
            message=message,
            changes=tuple(self.changes),
        )

    def _failed(
        self,
        spec: ReconcileSpec,
        failure: StepFailed,
        artifact: Artifact | None,
        built: Built | None,
        finalizer: FinalizerChange | None,
    ) -> Outcome:
        self._condition("Ready", "False", failure.reason, failure.message)
        if failure.terminal:
            self._condition("Stalled", "True", failure.reason, failure.message)
            self._conditions(lambda c: remove_condition(c, "Reconciling"))
            self.status["observedGeneration"] = self.generation
            requeue = None
        else:
            self._conditions(lambda c: remove_condition(c, "Stalled"))
            self._retrying()
            requeue = self._jitter(
                failure.requeue_after if failure.requeue_after is not None else spec.retry_interval
            )
        if built is not None and artifact is not None:
            status = (
                failure.reason
                if failure.reason in (Reason.PRUNE_FAILED, Reason.HEALTH_CHECK_FAILED)
                else Reason.RECONCILIATION_FAILED
            )
            self._history(built, status, artifact)
        if failure.reason is not Reason.DEPENDENCY_NOT_READY:
            self._event("error", failure.reason, failure.message, artifact)
        return Outcome(
            self.status,
            requeue,
            finalizer,
            reason=failure.reason,
            message=failure.message,
            changes=tuple(self.changes),
        )

    def _invalid(self, message: str) -> Outcome:
        text = TERMINAL_PREFIX + message
        self._condition("Ready", "False", Reason.RECONCILIATION_FAILED, text)
        self._condition("Stalled", "True", Reason.RECONCILIATION_FAILED, text)
        self._conditions(lambda c: remove_condition(c, "Reconciling"))
        self.status["observedGeneration"] = self.generation
        self._event("error", Reason.RECONCILIATION_FAILED, text, None)
        return Outcome(self.status, None, reason=Reason.RECONCILIATION_FAILED, message=text)

    def _finalize(self, spec: ReconcileSpec) -> Outcome:
        if not spec.has_finalizer:
            return Outcome(None, None)
        inventory = self._old_inventory()
        policy = spec.build.deletion_policy
        delete = policy in ("Delete", "WaitForTermination") or (
            policy == "MirrorPrune" and spec.build.prune
        )
        if delete and inventory and not spec.build.suspend:
            pruned = self.deps.engines.prune(
                inventory,
                owner=Owner(spec.name, spec.namespace),
                service_account=self._identity(spec),
            )
            self._announce(pruned.changes, None)
            if pruned.error is not None:
                self._event("error", Reason.PRUNE_FAILED, pruned.error, None)
                return Outcome(
                    None,
                    self._jitter(spec.retry_interval),
                    reason=Reason.PRUNE_FAILED,
                    message=pruned.error,
                    changes=tuple(self.changes),
                )
        return Outcome(None, None, FinalizerChange.REMOVE, changes=tuple(self.changes))

    # --- status helpers ---------------------------------------------------------------------

    def _kept_transitions(self, outcome: Outcome) -> Outcome:
        # A run passes through Ready=Unknown on its way back to True; when the written status
        # ends where it began, its lastTransitionTime must not move.
        before = {
            item.get("type"): item
            for item in (self.obj.get("status") or {}).get("conditions") or []
            if isinstance(item, Mapping)
        }
        for item in self.status.get("conditions") or []:
            old = before.get(item.get("type"))
            if old is not None and old.get("status") == item.get("status"):
                item["lastTransitionTime"] = old.get(
                    "lastTransitionTime", item["lastTransitionTime"]
                )
        return outcome

    def _handled(self, spec: ReconcileSpec) -> None:
        if spec.requested_at is not None:
            self.status["lastHandledReconcileAt"] = spec.requested_at

    def _progressing(self, spec: ReconcileSpec, what: str, artifact: Artifact) -> None:
        message = (
            f"{what} for revision {artifact.revision} with a timeout of "
            f"{format_duration(spec.timeout)}"
        )
        if what == "Fetching manifests":
            self._condition("Ready", "Unknown", Reason.PROGRESSING, "Reconciliation in progress")
        self._condition("Reconciling", "True", Reason.PROGRESSING, message)
        self._conditions(lambda c: remove_condition(c, "Stalled"))
        if self.deps.progress is not None:
            self.deps.progress(self.obj, copy.deepcopy(self.status))

    def _retrying(self) -> None:
        reconciling = self._get_condition("Reconciling")
        if reconciling is not None:
            self._condition(
                "Reconciling",
                "True",
                Reason.PROGRESSING_WITH_RETRY,
                str(reconciling.get("message") or ""),
            )

    def _get_condition(self, kind: str) -> Mapping[str, Any] | None:
        for item in self.status.get("conditions") or []:
            if item.get("type") == kind:
                found: Mapping[str, Any] = item
                return found
        return None

    def _condition(self, kind: str, status: str, reason: str, message: str) -> None:
        self.status["conditions"] = set_condition(
            self.status.get("conditions") or [],
            kind,
            status,
            str(reason),
            message,
            generation=self.generation,
            now=self.deps.clock.now(),
        )

    def _conditions(self, change: Any) -> None:
        self.status["conditions"] = change(self.status.get("conditions") or [])

    def _old_inventory(self) -> list[InventoryEntry]:
        entries = ((self.obj.get("status") or {}).get("inventory") or {}).get("entries") or []
        return [
            InventoryEntry(str(item.get("id")), str(item.get("v") or ""))
            for item in entries
            if isinstance(item, Mapping) and item.get("id")
        ]

    def _set_inventory(self, entries: Sequence[InventoryEntry]) -> None:
        self.status["inventory"] = {"entries": [entry.as_status() for entry in entries]}

    def _history(self, built: Built, status: str, artifact: Artifact) -> None:
        self.status["history"] = upsert_history(
            self.status.get("history") or [],
            digest=built.digest,
            status=str(status),
            revision=artifact.revision,
            origin_revision=artifact.origin_revision,
            now=self.deps.clock.now(),
            duration=self._elapsed(),
        )

    def _identity(self, spec: ReconcileSpec) -> str | None:
        return spec.service_account or self.deps.options.default_service_account

    def _elapsed(self) -> str:
        return format_duration(round(self.deps.clock.monotonic() - self.started, 6))

    def _jitter(self, seconds: float) -> float:
        # Flux's jitter.JitteredIntervalDuration: a uniform spread of +/- the percentage.
        spread = self.deps.options.jitter_percentage / 100.0
        return seconds * (1.0 + spread * (2.0 * self.deps.clock.random() - 1.0))

    # --- events -----------------------------------------------------------------------------

    def _announce(self, changes: Sequence[ChangeEntry], artifact: Artifact | None) -> None:
        # One event per stage that changed something (apply, then prune), as Flux emits them.
        self.changes.extend(changes)
        lines = [str(change) for change in changes if change.action not in _QUIET_ACTIONS]
        if lines:
            self._event("info", Reason.PROGRESSING, "\n".join(lines), artifact)

    def _event(
        self,
        severity: str,
        reason: str,
        message: str,
        artifact: Artifact | None,
        *,
        commit_status: bool = False,
    ) -> None:
        metadata: dict[str, str] = {}
        if artifact is not None:
            metadata[f"{GROUP}/revision"] = artifact.revision
            if artifact.origin_revision:
                metadata[f"{GROUP}/originRevision"] = artifact.origin_revision
        if commit_status:
            metadata[f"{GROUP}/commit_status"] = "update"
        self.deps.events.event(
            self.obj, severity=severity, reason=str(reason), message=message, metadata=metadata
        )
