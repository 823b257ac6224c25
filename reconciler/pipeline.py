"""One reconcile of one Flux Kustomization, in kustomize-controller's order, one named step a line.

`reconcile_kustomization(obj, deps)` is the call the loop makes. It reads the object, runs the
steps (source -> dependsOn -> artifact -> variables -> build -> apply -> inventory -> prune ->
health) and returns an `Outcome`: the whole new `status` (as `reconciler.status` computes Flux's),
the finalizer change and when to run again (interval or retryInterval, with Flux's jitter). Each
step fails with Flux's reason (`ArtifactFailed`, `DependencyNotReady`, `BuildFailed`,
`ReconciliationFailed`, `PruneFailed`, `HealthCheckFailed`, `AccessDenied`,
`InvalidCELExpression`); the status then says so as Flux writes it (Ready=False and
Reconciling=True/ProgressingWithRetry, or Stalled=True for configuration errors) and nothing is
pruned. Prune runs only after a complete apply and only with `spec.prune`.

Also as Flux: `suspend` skips the run (the status only echoes `reconcile.fluxcd.io/requestedAt`),
a new object first gets the finalizer `finalizers.fluxcd.io`, and deletion runs
`spec.deletionPolicy` over the inventory before the finalizer is removed. Where Flux waits
forever on a `dependsOn` cycle, the cycle is reported as Stalled (DependencyNotReady).

This module does not write to the cluster itself (the loop writes the outcome) and never sees a
Secret value: the build's cleartext objects pass through it opaquely to the apply step, and every
message it handles is already scrubbed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.errors import TidegateError
from reconciler import health, status
from reconciler.kustomization.artifact import check_path
from reconciler.kustomization.build import Built, build
from reconciler.kustomization.dependencies import check_dependencies
from reconciler.kustomization.deps import Applied, Deps, Owner
from reconciler.kustomization.inventory import applied_refs, merge_survivors, stale_entries
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

_QUIET_ACTIONS = ("unchanged", "skipped")


def reconcile_kustomization(obj: Mapping[str, Any], deps: Deps) -> Outcome:
    """Reconcile `obj` once and return what to write and when to come back (see module doc)."""
    return _Run(obj, deps).execute()


class _Run:
    """The state of one reconcile: the status being built and the time it started."""

    def __init__(self, obj: Mapping[str, Any], deps: Deps) -> None:
        self.obj = obj
        self.deps = deps
        self.status: dict[str, Any] = dict(obj.get("status") or {})
        self.started = deps.clock.monotonic()
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        self.run = status.Run(generation, deps.clock.now())
        self.changes: list[ChangeEntry] = []

    def execute(self) -> Outcome:
        try:
            spec = read_spec(self.obj)
        except TidegateError as exc:
            return self._invalid(str(exc))
        if spec.deleting:
            return self._finalize(spec)
        finalizer = None if spec.has_finalizer else FinalizerChange.ADD
        if spec.build.suspend:
            return Outcome(self._finished(spec), None, finalizer, reason="Suspended")
        artifact: Artifact | None = None
        built: Built | None = None
        try:
            rules = self._health_rules()
            artifact = self._source(spec)
            self._depends_on(spec, artifact)
            self._phase(spec, status.fetching_message, artifact, start=True)
            tree = self.deps.artifacts.tree(
                artifact,
                owner=str(spec.build.source),
                requeue_dependency=self.deps.options.requeue_dependency,
            )
            if self.deps.observer is not None:
                self.deps.observer.applying(self.obj, artifact.revision, tree)
            self.status = status.attempted(self.status, artifact.revision)
            check_path(tree, spec.build.path)
            self._phase(spec, status.building_message, artifact)
            variables = read_variables(spec.build, self.deps.objects)
            built = build(
                spec.build,
                tree,
                variables,
                artifact_digest=artifact.digest,
                kustomize=self.deps.options.kustomize,
                work_root=self.deps.options.work_root,
            )
            self._phase(spec, status.detecting_drift_message, artifact)
            applied = self._apply(spec, built, artifact)
            new_inventory = self._inventory(applied)
            self._prune(spec, applied, new_inventory, artifact)
            checked = self._health(spec, artifact, applied, rules, built.self_deleting)
        except StepFailed as failure:
            return self._failed(spec, failure, artifact, built, finalizer)
        return self._succeeded(spec, artifact, built, checked, finalizer)

    # --- steps ------------------------------------------------------------------------------

    def _health_rules(self) -> health.ExprRules:
        try:
            return health.ExprRules.compile(self.obj)
        except health.InvalidExpressionError as exc:
            raise StepFailed(Reason.INVALID_CEL_EXPRESSION, str(exc), terminal=True) from None

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
            if not failure.terminal:
                self._event(
                    "info",
                    failure.reason,
                    "Dependencies do not meet ready condition, retrying in "
                    f"{status.go_duration(requeue)}",
                    artifact,
                )
            raise

    def _apply(self, spec: ReconcileSpec, built: Built, artifact: Artifact) -> Applied:
        applied = self.deps.engines.apply(
            built.objects,
            owner=Owner(spec.name, spec.namespace),
            service_account=self._identity(spec),
            force=spec.force,
            ignore=spec.ignore,
        )
        self._announce(applied.changes, artifact)
        if applied.error is not None:
            raise StepFailed(Reason.RECONCILIATION_FAILED, applied.error)
        return applied

    def _inventory(self, applied: Applied) -> list[InventoryEntry]:
        # As Flux: the new inventory is written before pruning, so a failed prune still records
        # what the build produced (survivors are merged back in by `_prune`). The apply engine
        # gives it in Flux's order.
        new = list(applied.inventory)
        self._set_inventory(new)
        return new

    def _prune(
        self, spec: ReconcileSpec, applied: Applied, new: list[InventoryEntry], artifact: Artifact
    ) -> None:
        if not spec.build.prune:
            return
        stale = stale_entries(self._old_inventory(), new)
        if not stale:
            return
        pruned = self.deps.engines.prune(
            stale,
            applied=applied,
            owner=Owner(spec.name, spec.namespace),
            service_account=self._identity(spec),
        )
        self._announce(pruned.changes, artifact)
        if pruned.survivors:
            self._set_inventory(merge_survivors(new, pruned.survivors))
        if pruned.error is not None:
            raise StepFailed(Reason.PRUNE_FAILED, pruned.error)

    def _health(
        self,
        spec: ReconcileSpec,
        artifact: Artifact,
        applied: Applied,
        rules: health.ExprRules,
        self_deleting: frozenset[health.ObjectRef],
    ) -> dt.timedelta | None:
        try:
            refs = health.targets(self.obj, applied_refs(applied.inventory, applied.changes))
        except TidegateError as exc:
            raise StepFailed(Reason.HEALTH_CHECK_FAILED, str(exc)) from None
        if not spec.wait and not (self.obj.get("spec") or {}).get("healthChecks"):
            return None
        timeout = dt.timedelta(seconds=spec.timeout)
        self.status = status.health_progressing(
            self.status, self.run, status.health_check_message(artifact.revision, timeout)
        )
        self._progress()
        report = self.deps.engines.wait(
            refs,
            rules=rules,
            timeout=timeout,
            gone_is_current=self_deleting,
            owner=Owner(spec.name, spec.namespace),
            service_account=self._identity(spec),
        )
        if not report.passed:
            raise StepFailed(Reason.HEALTH_CHECK_FAILED, report.message)
        return report.elapsed

    # --- endings ----------------------------------------------------------------------------

    def _succeeded(
        self,
        spec: ReconcileSpec,
        artifact: Artifact,
        built: Built,
        checked: dt.timedelta | None,
        finalizer: FinalizerChange | None,
    ) -> Outcome:
        self.status = status.succeeded(
            self.status, self.run, artifact.revision, health_checked=checked
        )
        if artifact.origin_revision:
            self.status["lastAppliedOriginRevision"] = artifact.origin_revision
        self._history(built, Reason.RECONCILIATION_SUCCEEDED, artifact)
        if self.deps.observer is not None:
            self.deps.observer.applied(
                self.obj,
                artifact.revision,
                changes=tuple(self.changes),
                seconds=self.deps.clock.monotonic() - self.started,
                healthy=checked is not None,
            )
        self._event(
            "info",
            Reason.RECONCILIATION_SUCCEEDED,
            f"Reconciliation finished in {self._elapsed()}, next run in "
            f"{status.go_duration(spec.interval)}",
            artifact,
            commit_status=True,
        )
        return Outcome(
            self._finished(spec),
            self._jitter(spec.interval),
            finalizer,
            ready=True,
            reason=Reason.RECONCILIATION_SUCCEEDED,
            message=f"Applied revision: {artifact.revision}",
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
        self.status = status.failed(self.status, self.run, failure.reason, failure.message)
        if failure.terminal and not failure.reason.terminal:
            self._stall(failure.reason, failure.message)
        if built is not None and artifact is not None:
            outcome = (
                failure.reason
                if failure.reason in (Reason.PRUNE_FAILED, Reason.HEALTH_CHECK_FAILED)
                else Reason.RECONCILIATION_FAILED
            )
            self._history(built, outcome, artifact)
        ready = status.condition(self.status, status.READY) or {}
        message = str(ready.get("message", failure.message))
        if not (failure.reason is Reason.DEPENDENCY_NOT_READY and not failure.terminal):
            if self.deps.observer is not None and artifact is not None:
                self.deps.observer.failed(self.obj, artifact.revision, failure.reason, message)
            self._event("error", failure.reason, message, artifact)
        if failure.terminal:
            requeue = None
        else:
            after = failure.requeue_after
            requeue = self._jitter(spec.retry_interval if after is None else after)
        return Outcome(
            self._finished(spec),
            requeue,
            finalizer,
            reason=failure.reason,
            message=message,
            changes=tuple(self.changes),
        )

    def _invalid(self, problem: str) -> Outcome:
        message = status.TERMINAL_PREFIX + problem
        self.status = status.failed(self.status, self.run, Reason.RECONCILIATION_FAILED, message)
        self._stall(Reason.RECONCILIATION_FAILED, message)
        self._event("error", Reason.RECONCILIATION_FAILED, message, None)
        return Outcome(self.status, None, reason=Reason.RECONCILIATION_FAILED, message=message)

    def _stall(self, reason: Reason, message: str) -> None:
        # A configuration error Flux itself would retry forever (a dependsOn cycle, a spec
        # field it cannot read): Stalled, not retried, as Flux's own terminal errors.
        self.status = status.remove_condition(self.status, status.RECONCILING)
        self.status = status.set_condition(
            self.status,
            status.STALLED,
            "True",
            reason,
            message,
            generation=self.run.generation,
            now=self.run.now,
        )
        self.status["observedGeneration"] = self.run.generation

    def _finalize(self, spec: ReconcileSpec) -> Outcome:
        if not spec.has_finalizer:
            return Outcome(None, None)
        inventory = self._old_inventory()
        if inventory:
            pruned = self.deps.engines.finalize(
                inventory,
                owner=Owner(spec.name, spec.namespace),
                service_account=self._identity(spec),
                policy=spec.build.deletion_policy,
                prune_enabled=spec.build.prune,
                suspended=spec.build.suspend,
                timeout=spec.timeout,
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

    def _phase(
        self,
        spec: ReconcileSpec,
        message: Callable[[str, dt.timedelta], str],
        artifact: Artifact,
        *,
        start: bool = False,
    ) -> None:
        text = message(artifact.revision, dt.timedelta(seconds=spec.timeout))
        if start:
            self.status = status.started(self.status, self.run, text)
        else:
            self.status = status.reconciling(self.status, self.run, text)
        self._progress()

    def _progress(self) -> None:
        if self.deps.progress is not None:
            self.deps.progress(self.obj, dict(self.status))

    def _finished(self, spec: ReconcileSpec) -> dict[str, Any]:
        done = status.finished(self.status, self.run, spec.requested_at)
        return self._kept_transitions(done)

    def _kept_transitions(self, done: dict[str, Any]) -> dict[str, Any]:
        # A run passes through Ready=Unknown on its way back to True; when the written status
        # ends where it began, its lastTransitionTime must not move.
        before = {
            item.get("type"): item
            for item in (self.obj.get("status") or {}).get("conditions") or []
            if isinstance(item, Mapping)
        }
        if "conditions" not in done:
            return done
        kept = []
        for item in done["conditions"]:
            old = before.get(item.get("type"))
            if old is not None and old.get("status") == item.get("status"):
                item = {**item, "lastTransitionTime": old.get("lastTransitionTime")}
            kept.append(item)
        return {**done, "conditions": kept}

    def _old_inventory(self) -> list[InventoryEntry]:
        entries = ((self.obj.get("status") or {}).get("inventory") or {}).get("entries") or []
        return [
            InventoryEntry(str(item.get("id")), str(item.get("v") or ""))
            for item in entries
            if isinstance(item, Mapping) and item.get("id")
        ]

    def _set_inventory(self, entries: Sequence[InventoryEntry]) -> None:
        self.status["inventory"] = {"entries": [entry.as_status() for entry in entries]}

    def _history(self, built: Built, outcome: Reason, artifact: Artifact) -> None:
        self.status = status.recorded(
            self.status,
            digest_=built.digest,
            outcome=outcome,
            finished_at=self.deps.clock.now(),
            duration=dt.timedelta(seconds=self.deps.clock.monotonic() - self.started),
            metadata=status.revision_metadata(artifact.revision, artifact.origin_revision or ""),
        )

    def _identity(self, spec: ReconcileSpec) -> str | None:
        return spec.service_account or self.deps.options.default_service_account

    def _elapsed(self) -> str:
        return status.go_duration(round(self.deps.clock.monotonic() - self.started, 6))

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
        self.deps.events.record(
            {**self.obj, "status": self.status},
            severity,
            message,
            revision=artifact.revision if artifact is not None else "",
            origin_revision=(artifact.origin_revision or "") if artifact is not None else "",
            commit_status=commit_status,
            reason=str(reason),
        )
