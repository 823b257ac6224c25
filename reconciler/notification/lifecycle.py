"""Deploy statuses: what a Kustomization's reconcile tells the commit it applies, step by step.

`DeployReporter` is two things at once: the pipeline's `ReconcileObserver` (told when a revision
starts applying and how the run ended) and the event subscriber in front of the notifier
(`forward`). The events themselves stay the ones kustomize-controller sends; the reporter adds:

- when a revision starts applying (a new revision, or one whose last run failed): an event with
  reason `Progressing` and metadata `commit_status: pending`, description
  `applying to <cluster>/<kustomization>`. Flux's own notifier skips `Progressing` events, so a
  Flux notification-controller receiving it changes nothing;
- on the run's final event: the status description (`applied in 14s, healthy`, plus
  `; applied as previewed` or `; applied with N differences` when a preview was compared, or
  `<reason in words>: <first line of the message>` on failure) in the metadata key
  `commit_status_description`, and the predicted-vs-applied details (names and actions only) for
  commit-status Providers to post as a commit comment;
- a run that re-applies a revision already applied and Ready (the periodic reconcile) posts no
  new commit status: the commit keeps the outcome of the run that applied it. Its events still
  reach every other Provider unchanged.

Statuses go to the commit the artifact was built from: a revision that does not end in
`sha1:<hex>` or `sha256:<hex>` gets no pending status. Mismatches are counted in
`tidegate_predicted_mismatch_total`. Nothing here blocks on the network: the notifier only
queues.

Nothing here waits for the prediction either, so the pipeline's time and outcome never depend on
it. The preview of last applied -> new starts when the run has applied (`applied`), on a worker
thread of its own, reading the new revision from its unpacked artifact. It does not start when
the revision starts applying: a preview running beside the build, apply and health checks takes
the interpreter lock from the pipeline each time its requests return, which made the reconcile
itself slower. `applied` notes the change set and starts the preview; when the run's final event
arrives (`forward`) before the preview has finished, that event is held back and sent, with the
verdict in its status description, by the worker as soon as the preview ends (so a final event
may reach Providers after the next revision's `Progressing`; each status still lands on its own
commit). The `Recorder` keeps the artifact (git, for the next prediction's base) on the same
worker after the preview (after a failed run too), so the pipeline never waits for the store.
The artifact outlives its run there: with `trees` (the artifact cache's `TreePins`), it is held
from `applying` until its preview and its keeping have ended (or been cancelled), so the cache
cannot remove it under them; a run that never ended releases it when the next run of the same
Kustomization starts. A tree gone before it could be held is neither previewed nor kept from (a
partial tree must never give a verdict): that run's status has no verdict, and a log line says
why.

`drain` waits for the held-back events (tests); `close` (shutdown) sends them, cancelling the
previews not started yet, and no preview starts after it.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter

from core.changes import UnitPlan
from core.model import ObjectRef, UnitKind, UnitRef
from core.predicted import Applied, compare
from core.report.predicted import comparison_markdown
from reconciler.events import CONTROLLER, involved_object
from reconciler.kustomization.model import ChangeEntry
from reconciler.notification.commit_status import DESCRIPTION_KEY, PENDING, description_of
from reconciler.notification.event import ERROR, INFO, Event
from reconciler.status import go_duration

__all__ = [
    "DeployReporter",
    "Notify",
    "Predictor",
    "Recorder",
    "TreeHolder",
    "applied_outcomes",
    "sha_of",
]

GROUP = "kustomize.toolkit.fluxcd.io"
_LOG = logging.getLogger(__name__)
_SHA = re.compile(r"(?:sha1:[0-9a-f]{40}|sha256:[0-9a-f]{64})")
_MESSAGE = 100
"""Characters of a failure message kept in the status description."""


class Notify(Protocol):
    """The notifier's `notify`."""

    def __call__(self, event: Event, *, details: str = "", statuses: bool = True) -> object:
        """Queue `event`; `details` and statuses for commit-status Providers."""


class Predictor(Protocol):
    """The offline preview of `previous` -> `revision` for one Kustomization (shared engine)."""

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        """The unit's previewed changes, or None when no preview can be made."""


class Recorder(Protocol):
    """Keeps the unpacked artifact of each revision reconciled, for later predictions."""

    def unpacked(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        """Note `tree`, the files of `revision`, for its prediction; starts no process."""

    def record(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        """Keep `tree`, the files of `revision` the Kustomization is reconciling."""


class TreeHolder(Protocol):
    """Keeps an unpacked artifact in place while it is read after its run (the cache's pins)."""

    def hold(self, tree: Path) -> bool:
        """Hold `tree` until `release`; False when it is gone already."""

    def release(self, tree: Path) -> None:
        """End one `hold` of `tree`."""


def sha_of(revision: str) -> str | None:
    """The commit hash of a source revision (`main@sha1:<hex>`, `sha1:<hex>`), else None.

    Only the current forms are accepted: a status must land on the exact commit applied, so a
    revision that does not name one gets no pending status rather than one on a guess.
    """
    digest = revision.rpartition("@")[2]
    return digest.partition(":")[2] if _SHA.fullmatch(digest) else None


@dataclass
class _Run:
    """What the reporter knows about the run in progress for one Kustomization."""

    revision: str
    reporting: bool
    """A new revision (or a retry after a failure): its outcome is news for the commit."""
    description: str = ""
    details: str = ""
    prediction: Future[UnitPlan | None] | None = None
    """The preview of last applied -> this revision, started when the run applied it."""
    tree: Path | None = None
    """The unpacked artifact, held from `applying` until its preview and keeping are queued."""
    changes: Sequence[ChangeEntry] | None = None
    """The applied change set, compared with the prediction when it ends (None: not applied)."""
    previewable: bool = True
    """False when the unpacked artifact was gone before the preview could hold it."""


class DeployReporter:
    """The reconcile observer that reports each step of a revision to its commit."""

    def __init__(
        self,
        notify: Notify,
        *,
        cluster: str = "",
        predictor: Predictor | None = None,
        recorder: Recorder | None = None,
        trees: TreeHolder | None = None,
        registry: CollectorRegistry | None = None,
        now: Callable[[], datetime.datetime] | None = None,
        instance: str = "",
    ) -> None:
        """`cluster` names this cluster in descriptions; `registry` receives the counter.

        `trees` holds each unpacked artifact until its preview and keeping end; without it the
        artifact must stay in place by other means.
        """
        self._notify = notify
        self._cluster = cluster
        self._predictor = predictor
        self._recorder = recorder
        self._trees = trees
        self._workers: ThreadPoolExecutor | None = None
        self._closed = False
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self._instance = instance
        self._runs: dict[tuple[str, str], _Run] = {}
        self._lock = threading.Lock()
        self.mismatches = Counter(
            "tidegate_predicted_mismatch",
            "Applies whose change set differed from the preview of the same revision.",
            ("namespace", "name"),
            registry=registry,
        )

    # --- ReconcileObserver --------------------------------------------------------------------

    def applying(self, obj: Mapping[str, Any], revision: str, tree: Path | None = None) -> None:
        """A pending status, unless this run only re-applies a revision already Ready.

        With `tree` (the unpacked artifact), the tree is held for the preview of the last
        applied revision to this one and for the recorder, which start when the run ends.
        """
        namespace, name = _names(obj)
        reporting = not _already_applied(obj, revision)
        try:
            held, previewable = self._hold(tree), True
        except _TreeGoneError:
            # Only a whole tree can be previewed: no verdict rather than one on missing files.
            _LOG.warning(
                "the artifact of %s was removed before its preview could hold it: "
                "no predicted-vs-applied verdict for this run",
                revision,
            )
            held, previewable = None, False
        with self._lock:
            earlier = self._runs.get((namespace, name))
            self._runs[(namespace, name)] = _Run(
                revision, reporting, tree=held, previewable=previewable
            )
        if earlier is not None and earlier.tree is not None and self._trees is not None:
            self._trees.release(earlier.tree)  # that run never ended
        if not reporting or sha_of(revision) is None:
            return
        where = f"{self._cluster}/{name}" if self._cluster else f"{namespace}/{name}"
        metadata = {
            f"{GROUP}/revision": revision,
            f"{GROUP}/commit_status": PENDING,
            f"{GROUP}/{DESCRIPTION_KEY}": f"applying to {where}",
        }
        self._send(self._event(obj, INFO, "Progressing", f"Applying revision {revision}", metadata))

    def applied(
        self,
        obj: Mapping[str, Any],
        revision: str,
        *,
        changes: Sequence[ChangeEntry],
        seconds: float,
        healthy: bool,
    ) -> None:
        """Prepare the success description; the comparison is made when the preview ends.

        Returns at once: the preview is started, never waited for (see `forward`).
        """
        namespace, name = _names(obj)
        description = f"applied in {_rounded(seconds)}" + (", healthy" if healthy else "")
        this, tree = self._take_tree(namespace, name, revision)
        started = self._start_prediction(obj, revision, tree) if tree is not None else None
        if started is None and (this is None or this.previewable):
            # No unpacked artifact was handed over: the preview is made now, off the path too.
            started = self._submit_prediction(obj, revision)
        self._finish(
            namespace, name, revision, description, "", changes=changes, prediction=started
        )

    def failed(self, obj: Mapping[str, Any], revision: str, reason: str, message: str) -> None:
        """Prepare the failure description: Flux's reason and the message's first line."""
        namespace, name = _names(obj)
        first = message.strip().splitlines()[0] if message.strip() else ""
        if len(first) > _MESSAGE:
            first = first[: _MESSAGE - 1] + "…"
        description = description_of(reason) + (f": {first}" if first else "")
        _, tree = self._take_tree(namespace, name, revision)
        if tree is not None:
            self._start_prediction(obj, revision, tree, predict=False)  # kept all the same
        self._finish(namespace, name, revision, description, "", failed=True)

    # --- event subscriber -------------------------------------------------------------------

    def forward(self, event: Event) -> None:
        """Pass `event` to the notifier, annotated when it ends a run this reporter followed."""
        involved = event.involved_object
        final = event.severity == ERROR or event.metadata.get(f"{GROUP}/commit_status") == "update"
        if involved.kind != "Kustomization" or not final:
            self._send(event)
            return
        revision = event.metadata.get(f"{GROUP}/revision", "")
        with self._lock:
            run = self._runs.get((involved.namespace, involved.name))
            if run is not None and run.revision == revision and run.description:
                del self._runs[(involved.namespace, involved.name)]
            else:
                run = None
        if run is None:
            self._send(event)
        elif not run.reporting:
            self._send(event, statuses=False)
        elif run.prediction is not None and run.changes is not None:
            # Held back until the preview ends (at once when it has): the status carries the
            # verdict, and the pipeline goes on without waiting for it.
            run.prediction.add_done_callback(functools.partial(self._compared, event, run))
        else:
            self._send_final(event, run.description, run.details)

    # --- the predictions' worker --------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every preview started so far has ended and its held-back event is sent."""
        with self._lock:
            workers = self._workers
        if workers is not None:
            # One worker, in order: a no-op runs after every earlier task and its callbacks.
            workers.submit(lambda: None).result(timeout)

    def close(self) -> None:
        """Send the held-back events, then stop the worker (the process is stopping).

        The preview running is waited for; those not started yet are cancelled, so their final
        events go at once, without a verdict (and their revisions are not kept): a stopping
        controller must not spend its grace period previewing.
        """
        with self._lock:
            workers, self._workers = self._workers, None
            self._closed = True
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)

    # --- helpers ----------------------------------------------------------------------------

    def _send(self, event: Event, *, details: str = "", statuses: bool = True) -> None:
        try:
            self._notify(event, details=details, statuses=statuses)
        except Exception as exc:  # reading Alerts can fail (RBAC, apiserver); never the reconcile
            _LOG.warning(
                "notifications for %s/%s not sent: %s",
                event.involved_object.namespace,
                event.involved_object.name,
                exc,
            )

    def _send_final(self, event: Event, description: str, details: str) -> None:
        metadata = {**event.metadata, f"{GROUP}/{DESCRIPTION_KEY}": description}
        self._send(event.with_metadata(metadata), details=details)

    def _compared(self, event: Event, run: _Run, done: Future[UnitPlan | None]) -> None:
        """Send the held-back final event, its description saying how the apply compared."""
        description, details = run.description, run.details
        try:
            predicted = None if done.cancelled() else done.result()
            if predicted is not None and run.changes is not None:
                unit = UnitRef(
                    UnitKind.KUSTOMIZATION,
                    event.involved_object.namespace,
                    event.involved_object.name,
                )
                comparison = compare(predicted, applied_outcomes(run.changes, predicted))
                description += f"; {comparison.headline}"
                if not comparison.matched:
                    self.mismatches.labels(unit.namespace, unit.name).inc()
                    details = comparison_markdown(
                        comparison, unit, run.revision, cluster=self._cluster
                    )
        except Exception:  # a comparison that fails must not cost the commit its status
            _LOG.exception("predicted vs applied of %s not compared", run.revision)
        self._send_final(event, description, details)

    def _worker(self) -> ThreadPoolExecutor | None:
        """The predictions' worker; None once closed (a stopping process starts no preview)."""
        with self._lock:
            if self._workers is None and not self._closed:
                self._workers = ThreadPoolExecutor(1, thread_name_prefix="tidegate-predict")
            return self._workers

    def _submit_prediction(
        self, obj: Mapping[str, Any], revision: str
    ) -> Future[UnitPlan | None] | None:
        """The preview of a revision applied without its unpacked artifact, on the worker."""
        previous = _previous(obj)
        if self._predictor is None or not previous or previous == revision:
            return None
        namespace, name = _names(obj)
        unit = UnitRef(UnitKind.KUSTOMIZATION, namespace, name)
        workers = self._worker()
        return None if workers is None else workers.submit(self._predict, unit, previous, revision)

    def _hold(self, tree: Path | None) -> Path | None:
        """Hold `tree` for its preview and keeping; None when nothing will read it.

        Raises `_TreeGoneError` when `trees` cannot hold the tree: it was removed already.
        """
        if tree is None or (self._recorder is None and self._predictor is None):
            return None
        if self._worker() is None:
            return None
        if self._trees is not None and not self._trees.hold(tree):
            raise _TreeGoneError
        return tree

    def _take_tree(
        self, namespace: str, name: str, revision: str
    ) -> tuple[_Run | None, Path | None]:
        """The run of `revision` and the tree it holds, which the caller now owns."""
        with self._lock:
            run = self._runs.get((namespace, name))
            if run is None or run.revision != revision:
                return None, None
            tree, run.tree = run.tree, None
            return run, tree

    def _start_prediction(
        self, obj: Mapping[str, Any], revision: str, tree: Path, *, predict: bool = True
    ) -> Future[UnitPlan | None] | None:
        """Start the preview (with `predict`) and the keeping of the held `tree` on the worker.

        The hold ends once the last of them has ended, or was cancelled.
        """
        workers = self._worker()
        prediction: Future[UnitPlan | None] | None = None
        last: Future[Any] | None = None
        if workers is not None:
            try:
                if predict:
                    prediction = last = workers.submit(self._predict_unpacked, obj, revision, tree)
                if self._recorder is not None:
                    # One worker: the revision is kept after its prediction (which reads the
                    # artifact in place) and before the next one (whose base it is).
                    last = workers.submit(_keep, self._recorder, obj, revision, tree)
            except RuntimeError:  # closed meanwhile: a stopping process starts no preview
                pass
        trees = self._trees
        if trees is not None:
            if last is None:
                trees.release(tree)
            else:
                last.add_done_callback(lambda _: trees.release(tree))
        return prediction

    def _predict_unpacked(
        self, obj: Mapping[str, Any], revision: str, tree: Path
    ) -> UnitPlan | None:
        if self._recorder is not None:
            try:
                self._recorder.unpacked(obj, revision, tree)
            except Exception:  # noting a tree must never fail the reconcile
                _LOG.exception("the tree of %s was not noted", revision)
        namespace, name = _names(obj)
        return self._predict(
            UnitRef(UnitKind.KUSTOMIZATION, namespace, name), _previous(obj), revision
        )

    def _predict(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        if self._predictor is None or not previous or previous == revision:
            return None
        try:
            return self._predictor(unit, previous, revision)
        except Exception:  # a preview that cannot be made must not fail the reconcile
            _LOG.exception("preview of %s for %s failed", revision, unit)
            return None

    def _finish(
        self,
        namespace: str,
        name: str,
        revision: str,
        description: str,
        details: str,
        *,
        failed: bool = False,
        changes: Sequence[ChangeEntry] | None = None,
        prediction: Future[UnitPlan | None] | None = None,
    ) -> None:
        with self._lock:
            run = self._runs.get((namespace, name))
            if run is None or run.revision != revision:
                run = self._runs[(namespace, name)] = _Run(revision, reporting=True)
            # A failure is news even when the revision was already applied.
            run.reporting = run.reporting or failed
            run.description = description
            run.details = details
            run.changes = changes
            run.prediction = prediction

    def _event(
        self,
        obj: Mapping[str, Any],
        severity: str,
        reason: str,
        message: str,
        metadata: Mapping[str, str],
    ) -> Event:
        return Event(
            involved_object=involved_object(obj),
            severity=severity,
            timestamp=self._now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            message=message,
            reason=reason,
            reporting_controller=CONTROLLER,
            metadata=dict(metadata),
            reporting_instance=self._instance,
        )


class _TreeGoneError(Exception):
    """The unpacked artifact was removed before the preview could hold it."""


def _keep(recorder: Recorder, obj: Mapping[str, Any], revision: str, tree: Path) -> None:
    try:
        recorder.record(obj, revision, tree)
    except Exception:  # keeping a tree must never fail the reconcile
        _LOG.exception("the tree of %s was not kept", revision)


def _previous(obj: Mapping[str, Any]) -> str:
    """The revision the Kustomization applied last (its status before this run)."""
    return str((obj.get("status") or {}).get("lastAppliedRevision") or "")


def applied_outcomes(
    changes: Sequence[ChangeEntry], predicted: UnitPlan
) -> dict[ObjectRef, Applied]:
    """The change set keyed by object identity.

    Change-set subjects (`Kind/ns/name`) carry no API group, so the group is taken from the
    preview's object of the same kind, namespace and name.
    """
    groups = {(r.kind, r.namespace, r.name): r for r in (c.ref for c in predicted.changes)}
    outcomes: dict[ObjectRef, Applied] = {}
    for change in changes:
        parts = change.subject.split("/")
        if len(parts) == 3:
            kind, namespace, name = parts
        elif len(parts) == 2:
            (kind, name), namespace = parts, ""
        else:
            continue
        try:
            action = Applied(change.action)
        except ValueError:
            continue  # `unknown`: nothing to compare
        ref = groups.get((kind, namespace, name)) or ObjectRef("", kind, namespace, name)
        outcomes[ref] = action
    return outcomes


def _names(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _already_applied(obj: Mapping[str, Any], revision: str) -> bool:
    status = obj.get("status") or {}
    if status.get("lastAppliedRevision") != revision:
        return False
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _rounded(seconds: float) -> str:
    """`14s`, `1m5s`, `350ms`: Go's format, rounded to what a person reads."""
    return go_duration(round(seconds) if seconds >= 1 else round(seconds, 3))
