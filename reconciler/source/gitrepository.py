"""One reconcile pass of one GitRepository: fetch, archive, store, write the status.

`reconcile_git_repository(obj, reconciler)` is what the controller loop calls for an object it
dequeued; the `ReconcileResult` says when to requeue. The steps, one per method:

1. suspended (`spec.suspend`): nothing happens, no requeue (a resume changes the object);
2. read the spec (`reconciler.source.spec`); a spec that cannot work stalls the object; a new
   generation is first marked Reconciling (persisted) before anything is fetched;
   storage: as source-controller's reconcileStorage, an artifact URL that is not its path at
   the advertised address (the address changed since it was written: `--storage-adv-addr`, a
   new Service, a restart on another port) is rewritten and persisted before anything is
   fetched, so consumers can download it even while git is unreachable;
3. credentials: the Secret of `spec.secretRef` in the object's namespace;
4. fetch the ref into the object's cache (`reconciler.source.checkout`);
5. artifact: when the revision, the ignore rules and the stored file are unchanged the current
   artifact stands; otherwise archive the revision (`reconciler.source.archive`) into storage
   and garbage-collect older artifacts of the object;
6. status (`reconciler.source.status`), written through the `/status` subresource with a merge
   patch;
7. events, as source-controller records them, to the optional `EventSink` (the reconciler's
   `EventRecorder` is one): `NewArtifact` "stored artifact for commit '<subject>'" when a new
   artifact is stored, and a warning with the failure's reason and message on every failure.

Requeue: after success, `spec.interval` (the loop adds jitter); after a failure, exponential
backoff from `min_retry` doubling per consecutive failure, capped at the interval, as Flux's rate
limiter caps at its maximum. When git is unreachable or refuses the credentials the last
artifact, its URL and ArtifactInStorage stay, Ready turns False with the fetch error (reason
GitOperationFailed or AuthenticationFailed), and Kustomizations keep applying the last revision.

Nothing here logs a credential: messages come scrubbed from the checkout and credential modules.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.cluster.fluxobjects import GIT_REPOSITORY, FluxKind
from core.cluster.port import ClusterError, NotFound
from core.errors import InputError, TidegateError
from reconciler.source import status as source_status
from reconciler.source.archive import write_archive
from reconciler.source.auth import CredentialsError, GitCredentials
from reconciler.source.checkout import AUTHENTICATION_FAILED, Checkout, FetchError, GitFetcher
from reconciler.source.spec import GitRepositorySpec
from reconciler.source.storage import Storage

__all__ = [
    "EventSink",
    "GitRepositoryReconciler",
    "ReconcileResult",
    "SourceCluster",
    "reconcile_git_repository",
]

KIND_DIRECTORY = "gitrepository"
_FETCH_PREFIX = "failed to checkout and determine revision"


class SourceCluster(Protocol):
    """What the reconcile needs of the cluster (`core.cluster.fluxobjects.LiveCluster` has it)."""

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        """A Secret's decoded data."""
        ...

    def merge_patch_status(
        self, kind: FluxKind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch an object's status subresource."""
        ...


class EventSink(Protocol):
    """Receives the object's events (`reconciler.events.EventRecorder.record` fits)."""

    def record(
        self,
        obj: Mapping[str, Any],
        severity: str,
        message: str,
        *,
        revision: str = "",
        reason: str = "",
    ) -> object:
        """Record one event about `obj` (`severity` is `info` or `error`)."""
        ...


@dataclass(frozen=True)
class ReconcileResult:
    """The outcome of one pass."""

    requeue_after: float | None
    """Seconds until the next pass; None when the object should not be requeued (suspended)."""
    ready: bool
    reason: str
    message: str
    revision: str = ""
    """The revision fetched (the artifact's when stored), "" when nothing was fetched."""
    status: Mapping[str, Any] | None = None
    """The status written, None when none was."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class GitRepositoryReconciler:
    """Holds what passes share: the cluster, storage, caches and each object's failure count."""

    def __init__(
        self,
        cluster: SourceCluster,
        storage: Storage,
        fetcher: GitFetcher,
        *,
        min_retry: float = 0.75,
        max_archive_bytes: int = 512 << 20,
        events: EventSink | None = None,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.cluster = cluster
        self.storage = storage
        self.fetcher = fetcher
        self.min_retry = min_retry
        self.max_archive_bytes = max_archive_bytes
        self.clock = clock
        self.events = events
        self._failures: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def reconcile(self, obj: Mapping[str, Any]) -> ReconcileResult:
        """One pass for `obj` (the object as read from the API)."""
        spec = self._read_spec(obj)
        if isinstance(spec, ReconcileResult):
            return spec
        if spec.suspend:
            return ReconcileResult(None, False, "Suspended", "reconciliation is suspended")
        old = self._advertised(spec, obj.get("status") or {})
        obj = {**obj, "status": old}
        if source_status.generation_message(old, spec.generation):
            progress = source_status.progressing(old, generation=spec.generation, now=self.clock())
            self._write(spec, old, progress)
        try:
            credentials = self._credentials(spec)
            checkout = self.fetcher.fetch(
                spec.namespace, spec.name, spec.url, spec.ref, credentials, timeout=spec.timeout
            )
        except FetchError as exc:
            return self._failed(obj, spec, source_status.FETCH_FAILED, exc.reason, str(exc))
        try:
            artifact = self._artifact(spec, old, checkout)
        except (TidegateError, OSError) as exc:
            message = f"failed to archive and store artifact: {_oneline(exc)}"
            return self._failed(
                obj, spec, source_status.STORAGE_OPERATION_FAILED, "ArchiveOperationFailed", message
            )
        status = source_status.stored(
            old,
            artifact=artifact,
            generation=spec.generation,
            ignore=spec.ignore,
            requested_at=spec.requested_at,
            now=self.clock(),
        )
        self._write(spec, old, status)
        with self._lock:
            self._failures.pop((spec.namespace, spec.name), None)
        if artifact is not old.get("artifact"):
            self._event(
                {**obj, "status": status},
                "info",
                f"stored artifact for commit '{checkout.subject}'",
                revision=checkout.revision,
                reason="NewArtifact",
            )
        message = source_status.stored_message(checkout.revision)
        return ReconcileResult(spec.interval, True, "Succeeded", message, checkout.revision, status)

    def forget(self, namespace: str, name: str) -> None:
        """Drop an object's cache, artifacts and failure count (it was deleted)."""
        self.fetcher.forget(namespace, name)
        self.storage.remove_all(KIND_DIRECTORY, namespace, name)
        with self._lock:
            self._failures.pop((namespace, name), None)

    # --- steps ------------------------------------------------------------------------------

    def _read_spec(self, obj: Mapping[str, Any]) -> GitRepositorySpec | ReconcileResult:
        """The spec, or the result of stalling an object whose spec cannot work."""
        try:
            return GitRepositorySpec.from_object(obj)
        except InputError as exc:
            meta = obj.get("metadata") or {}
            namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
            annotations = meta.get("annotations") or {}
            requested = annotations.get("reconcile.fluxcd.io/requestedAt")
            status = source_status.stalled(
                obj.get("status") or {},
                reason="InvalidSpec" if exc.field != "spec.url" else "URLInvalid",
                message=str(exc),
                generation=int(meta.get("generation") or 0),
                requested_at=str(requested) if requested is not None else None,
                now=self.clock(),
            )
            self._patch(namespace, name, obj.get("status") or {}, status)
            return ReconcileResult(None, False, "Stalled", str(exc), status=status)

    def _advertised(self, spec: GitRepositorySpec, old: Mapping[str, Any]) -> Mapping[str, Any]:
        """`old` with its artifact's URL at the advertised address, written when it moved."""
        artifact = old.get("artifact")
        if not isinstance(artifact, Mapping) or not artifact.get("path"):
            return old
        url = self.storage.url_of(str(artifact["path"]))
        if artifact.get("url") == url:
            return old
        status = {**old, "artifact": {**artifact, "url": url}}
        self._write(spec, old, status)
        return status

    def _credentials(self, spec: GitRepositorySpec) -> GitCredentials | None:
        if not spec.secret_name:
            return None
        where = f"{spec.namespace}/{spec.secret_name}"
        try:
            data = self.cluster.secret_data(spec.namespace, spec.secret_name)
        except NotFound:
            raise FetchError(
                AUTHENTICATION_FAILED,
                f"failed to get secret '{where}': secrets \"{spec.secret_name}\" not found",
            ) from None
        except ClusterError as exc:
            raise FetchError(
                AUTHENTICATION_FAILED, f"failed to get secret '{where}': {exc}"
            ) from None
        try:
            return GitCredentials.from_secret(data, where)
        except CredentialsError as exc:
            raise FetchError(AUTHENTICATION_FAILED, f"{_FETCH_PREFIX}: {exc}") from None

    def _artifact(
        self, spec: GitRepositorySpec, old: Mapping[str, Any], checkout: Checkout
    ) -> Mapping[str, Any]:
        current = old.get("artifact")
        if (
            isinstance(current, Mapping)
            and current.get("revision") == checkout.revision
            and old.get("observedIgnore") == spec.ignore
            and self.storage.exists(str(current.get("path") or ""))
        ):
            return current
        stored = self.storage.store(
            KIND_DIRECTORY,
            spec.namespace,
            spec.name,
            lambda out: write_archive(
                checkout.repository,
                checkout.commit,
                out,
                spec_ignore=spec.ignore,
                max_bytes=self.max_archive_bytes,
            ),
        )
        self.storage.collect(KIND_DIRECTORY, spec.namespace, spec.name, stored.path)
        return source_status.artifact_record(
            path=stored.path,
            url=stored.url,
            revision=checkout.revision,
            digest=stored.digest,
            size=stored.size,
            now=self.clock(),
        )

    def _failed(
        self,
        obj: Mapping[str, Any],
        spec: GitRepositorySpec,
        condition: str,
        reason: str,
        message: str,
    ) -> ReconcileResult:
        old = obj.get("status") or {}
        status = source_status.failed(
            old,
            condition=condition,
            reason=reason,
            message=message,
            generation=spec.generation,
            requested_at=spec.requested_at,
            now=self.clock(),
        )
        self._write(spec, old, status)
        self._event({**obj, "status": status}, "error", message, reason=reason)
        with self._lock:
            key = (spec.namespace, spec.name)
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        delay = min(spec.interval, self.min_retry * 2 ** min(failures - 1, 40))
        return ReconcileResult(delay, False, reason, message, status=status)

    def _event(
        self,
        obj: Mapping[str, Any],
        severity: str,
        message: str,
        *,
        revision: str = "",
        reason: str = "",
    ) -> None:
        if self.events is not None:
            self.events.record(obj, severity, message, revision=revision, reason=reason)

    def _write(
        self, spec: GitRepositorySpec, old: Mapping[str, Any], status: Mapping[str, Any]
    ) -> None:
        self._patch(spec.namespace, spec.name, old, status)

    def _patch(
        self, namespace: str, name: str, old: Mapping[str, Any], status: Mapping[str, Any]
    ) -> None:
        # A merge patch keeps keys it does not mention: fields that went away are sent as null.
        patch: dict[str, Any] = {key: None for key in old if key not in status}
        patch.update(status)
        self.cluster.merge_patch_status(GIT_REPOSITORY, namespace, name, {"status": patch})


def reconcile_git_repository(
    obj: Mapping[str, Any], reconciler: GitRepositoryReconciler
) -> ReconcileResult:
    """One reconcile pass of the GitRepository `obj`; the result says when to requeue."""
    return reconciler.reconcile(obj)


def _oneline(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:2000]
