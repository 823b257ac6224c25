"""A Kustomization's status as kustomize-controller writes it: conditions, reasons, history.

Pure functions from one status (a plain dict, as read from the API) to the next, so the pipeline
can say what happened ("building", "failed with BuildFailed", "succeeded") and get the exact
status Flux would have written; `reconciler.status_writer` sends it through the status
subresource. The rules, with Flux's wording:

- Conditions are `metav1.Condition`s (`type`, `status`, `observedGeneration`,
  `lastTransitionTime`, `reason`, `message`), set as fluxcd/pkg's `conditions.Set` does:
  `lastTransitionTime` changes only when the status, reason or message changes;
  `observedGeneration` is the object's generation when the condition was set; the list is
  ordered Stalled, Reconciling, Ready, then by type; messages are cut at 20,000 characters
  (`MaxConditionMessageLength`).
- A run starts with Ready=Unknown/Progressing "Reconciliation in progress" and
  Reconciling=True/Progressing with a phase message ("Fetching manifests for revision <rev>
  with a timeout of <t>", then building, detecting drift, running health checks); Stalled goes.
- Success: Ready=True/ReconciliationSucceeded "Applied revision: <rev>", Reconciling goes,
  Healthy=True/Succeeded "Health check passed in <d>" when health was checked (else Healthy
  goes), `lastAppliedRevision` and `observedGeneration` set.
- A retryable failure: Ready=False with the failure's reason and message (HealthCheckFailed
  also sets Healthy=False with the wait's error); Reconciling stays True with reason
  ProgressingWithRetry, so kstatus and `flux` read the object as still in progress, as they
  read Flux's.
- A terminal failure (configuration that cannot work: AccessDenied, InvalidCELExpression,
  FeatureGateDisabled): Ready=False and Stalled=True with the reason, the message prefixed
  "Reconciliation failed terminally due to configuration error: ", Reconciling gone,
  `observedGeneration` set.
- Every run ends with `lastHandledReconcileAt` = the `reconcile.fluxcd.io/requestedAt` value.
- `history`: at most five snapshots, newest first; a run with the same digest and status as an
  existing entry updates that entry (count, times, duration, metadata) and moves it first.

Messages passed in must already be Secret-free: this module copies them, it does not mask.
Nothing here reads the clock or the cluster; the caller passes `now`.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import Failure

__all__ = [
    "HEALTHY",
    "HISTORY_LIMIT",
    "MAX_CONDITION_MESSAGE",
    "READY",
    "RECONCILING",
    "STALLED",
    "TERMINAL_PREFIX",
    "Reason",
    "Run",
    "attempted",
    "building_message",
    "condition",
    "detecting_drift_message",
    "digest",
    "failed",
    "fetching_message",
    "finished",
    "go_duration",
    "health_check_message",
    "health_progressing",
    "inventory_digest",
    "reason_for",
    "reconciling",
    "recorded",
    "remove_condition",
    "revision_metadata",
    "set_condition",
    "started",
    "succeeded",
    "timestamp",
]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
HEALTHY = "Healthy"

MAX_CONDITION_MESSAGE = 20_000
HISTORY_LIMIT = 5
TERMINAL_PREFIX = "Reconciliation failed terminally due to configuration error: "
_HEALTH_PREFIX = re.compile(r"^health check failed after [^:]*: ")


class Reason(enum.StrEnum):
    """The condition reasons kustomize-controller writes (fluxcd/pkg apis/meta and its own)."""

    PROGRESSING = "Progressing"
    PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
    SUCCEEDED = "Succeeded"
    RECONCILIATION_SUCCEEDED = "ReconciliationSucceeded"
    RECONCILIATION_FAILED = "ReconciliationFailed"
    ARTIFACT_FAILED = "ArtifactFailed"
    BUILD_FAILED = "BuildFailed"
    HEALTH_CHECK_FAILED = "HealthCheckFailed"
    HEALTH_CHECK_CANCELED = "HealthCheckCanceled"
    PRUNE_FAILED = "PruneFailed"
    DEPENDENCY_NOT_READY = "DependencyNotReady"
    ACCESS_DENIED = "AccessDenied"
    INVALID_CEL_EXPRESSION = "InvalidCELExpression"
    FEATURE_GATE_DISABLED = "FeatureGateDisabled"
    DIRECTORY_CREATION_FAILED = "DirectoryCreationFailed"

    @property
    def terminal(self) -> bool:
        """Whether Flux stalls on this reason instead of retrying."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {Reason.ACCESS_DENIED, Reason.INVALID_CEL_EXPRESSION, Reason.FEATURE_GATE_DISABLED}
)

# How a render failure (core's typed reasons) reads as a Flux reason. A source that cannot be
# fetched is an artifact problem; everything that goes wrong turning files into objects
# (invalid content, kustomize or helm, substitution and its inputs, a budget) is a build
# problem, as kustomize-controller files missing substituteFrom objects under BuildFailed; what
# is neither is the generic ReconciliationFailed.
_FAILURE_REASONS: Mapping[Failure, Reason] = {
    Failure.INPUT: Reason.BUILD_FAILED,
    Failure.SOURCE: Reason.ARTIFACT_FAILED,
    Failure.BUILD: Reason.BUILD_FAILED,
    Failure.DEPENDENCY: Reason.BUILD_FAILED,
    Failure.BUDGET: Reason.BUILD_FAILED,
    Failure.WITHHELD: Reason.RECONCILIATION_FAILED,
    Failure.INTERNAL: Reason.RECONCILIATION_FAILED,
}


def reason_for(failure: Failure) -> Reason:
    """The Flux reason for a typed render failure."""
    return _FAILURE_REASONS[failure]


# --- time and durations as Go prints them ------------------------------------------------------


def timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with seconds precision, as a `metav1.Time` is serialised."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float | datetime.timedelta) -> str:
    """A duration as Go's `time.Duration.String()` prints it (`2.818583s`, `5m0s`, `1h0m0s`)."""
    if isinstance(seconds, datetime.timedelta):
        nanos = (
            seconds.days * 86_400_000_000_000
            + seconds.seconds * 1_000_000_000
            + seconds.microseconds * 1000
        )
    else:
        nanos = round(seconds * 1e9)
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos == 0:
        return "0s"
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if nanos >= size:
                return sign + _decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(fraction).zfill(digits).rstrip('0')}"


# --- the phase messages --------------------------------------------------------------------------


def fetching_message(revision: str, timeout: datetime.timedelta) -> str:
    """Reconciling's message while the artifact is fetched."""
    return f"Fetching manifests for revision {revision} with a timeout of {go_duration(timeout)}"


def building_message(revision: str, timeout: datetime.timedelta) -> str:
    """Reconciling's message while the manifests are built."""
    return f"Building manifests for revision {revision} with a timeout of {go_duration(timeout)}"


def detecting_drift_message(revision: str, timeout: datetime.timedelta) -> str:
    """Reconciling's message before the apply."""
    return f"Detecting drift for revision {revision} with a timeout of {go_duration(timeout)}"


def health_check_message(revision: str, timeout: datetime.timedelta) -> str:
    """Reconciling's and Healthy's message while health is checked."""
    return f"Running health checks for revision {revision} with a timeout of {go_duration(timeout)}"


# --- conditions --------------------------------------------------------------------------------


def _conditions(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = status.get("conditions")
    if not isinstance(found, list):
        return []
    return [dict(c) for c in found if isinstance(c, Mapping)]


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of `type_`, or None."""
    for found in _conditions(status):
        if found.get("type") == type_:
            return found
    return None


def set_condition(
    status: Mapping[str, Any],
    type_: str,
    value: str,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """A copy of `status` with the condition set, as fluxcd/pkg's `conditions.Set` sets it.

    The transition time moves only when the condition's status, reason or message changes;
    the observed generation is always the object's. Conditions are kept in Flux's order:
    Stalled, Reconciling, Ready, then the others by type.
    """
    message = message[:MAX_CONDITION_MESSAGE]
    conditions = _conditions(status)
    previous = next((c for c in conditions if c.get("type") == type_), None)
    same = previous is not None and (
        previous.get("status"),
        previous.get("reason"),
        previous.get("message"),
    ) == (value, reason, message)
    updated = {
        "type": type_,
        "status": value,
        "observedGeneration": generation,
        "lastTransitionTime": previous.get("lastTransitionTime", timestamp(now))
        if same and previous is not None
        else timestamp(now),
        "reason": reason,
        "message": message,
    }
    conditions = [c for c in conditions if c.get("type") != type_]
    conditions.append(updated)
    return {**status, "conditions": sorted(conditions, key=_condition_order)}


# Flux sorts conditions for kubectl's sake: these first, by weight, then the rest by type.
_WEIGHTS = {STALLED: 0, RECONCILING: 1, READY: 2}


def _condition_order(condition: Mapping[str, Any]) -> tuple[int, str]:
    type_ = str(condition.get("type", ""))
    return (_WEIGHTS.get(type_, len(_WEIGHTS)), "" if type_ in _WEIGHTS else type_)


def remove_condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """A copy of `status` without the condition of `type_`."""
    return {**status, "conditions": [c for c in _conditions(status) if c.get("type") != type_]}


# --- the state machine -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What every transition needs to know about the object and the moment."""

    generation: int
    now: datetime.datetime


def started(status: Mapping[str, Any], run: Run, message: str) -> dict[str, Any]:
    """The start of a run: Ready Unknown, Reconciling True with `message`, Stalled gone."""
    status = set_condition(
        status,
        READY,
        "Unknown",
        Reason.PROGRESSING,
        "Reconciliation in progress",
        generation=run.generation,
        now=run.now,
    )
    status = reconciling(status, run, message)
    return remove_condition(status, STALLED)


def reconciling(status: Mapping[str, Any], run: Run, message: str) -> dict[str, Any]:
    """A new phase of the run: Reconciling True/Progressing with the phase's message."""
    return set_condition(
        status,
        RECONCILING,
        "True",
        Reason.PROGRESSING,
        message,
        generation=run.generation,
        now=run.now,
    )


def attempted(status: Mapping[str, Any], revision: str) -> dict[str, Any]:
    """The revision this run works on, recorded once the artifact is fetched."""
    return {**status, "lastAttemptedRevision": revision}


def health_progressing(status: Mapping[str, Any], run: Run, message: str) -> dict[str, Any]:
    """The health phase: Reconciling and Healthy (Unknown) carry the health-check message."""
    status = reconciling(status, run, message)
    return set_condition(
        status,
        HEALTHY,
        "Unknown",
        Reason.PROGRESSING,
        message,
        generation=run.generation,
        now=run.now,
    )


def succeeded(
    status: Mapping[str, Any],
    run: Run,
    revision: str,
    *,
    health_checked: datetime.timedelta | None = None,
) -> dict[str, Any]:
    """A successful run; `health_checked` is how long the health checks took, if any ran."""
    status = set_condition(
        status,
        READY,
        "True",
        Reason.RECONCILIATION_SUCCEEDED,
        f"Applied revision: {revision}",
        generation=run.generation,
        now=run.now,
    )
    if health_checked is None:
        status = remove_condition(status, HEALTHY)
    else:
        status = set_condition(
            status,
            HEALTHY,
            "True",
            Reason.SUCCEEDED,
            f"Health check passed in {go_duration(health_checked)}",
            generation=run.generation,
            now=run.now,
        )
    status = remove_condition(remove_condition(status, RECONCILING), STALLED)
    return {
        **status,
        "lastAppliedRevision": revision,
        "observedGeneration": run.generation,
    }


def failed(
    status: Mapping[str, Any],
    run: Run,
    reason: Reason,
    message: str,
    *,
    detail: str | None = None,
) -> dict[str, Any]:
    """A failed run: retryable unless `reason` is terminal (see the module docstring).

    For HealthCheckFailed, Healthy carries the wait's own error (`detail`, by default
    `message` without its "health check failed after <d>: " prefix), as in Flux.
    """
    if reason.terminal:
        message = TERMINAL_PREFIX + message
    status = set_condition(
        status, READY, "False", reason, message, generation=run.generation, now=run.now
    )
    if reason is Reason.HEALTH_CHECK_FAILED:
        healthy = detail if detail is not None else _HEALTH_PREFIX.sub("", message, count=1)
        status = set_condition(
            status, HEALTHY, "False", reason, healthy, generation=run.generation, now=run.now
        )
    if not reason.terminal:
        return status
    status = remove_condition(status, RECONCILING)
    status = set_condition(
        status, STALLED, "True", reason, message, generation=run.generation, now=run.now
    )
    return {**status, "observedGeneration": run.generation}


def finished(status: Mapping[str, Any], run: Run, requested_at: str | None) -> dict[str, Any]:
    """The end of every run (Flux's deferred patch).

    Records the handled `reconcile.fluxcd.io/requestedAt` value; a Ready object loses
    Reconciling and takes the generation as observed; a failed one still Reconciling is marked
    ProgressingWithRetry, keeping its message.
    """
    result = dict(status)
    if requested_at is not None:
        result["lastHandledReconcileAt"] = requested_at
    ready = condition(result, READY)
    if ready is not None and ready.get("status") == "True":
        result = remove_condition(result, RECONCILING)
        result["observedGeneration"] = run.generation
        return result
    progress = condition(result, RECONCILING)
    if ready is not None and ready.get("status") == "False" and progress is not None:
        result = set_condition(
            result,
            RECONCILING,
            "True",
            Reason.PROGRESSING_WITH_RETRY,
            str(progress.get("message", "")),
            generation=run.generation,
            now=run.now,
        )
    return result


# --- history -----------------------------------------------------------------------------------


def digest(data: bytes) -> str:
    """`sha256:<hex>` of `data` (Flux digests the built multi-document YAML)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def inventory_digest(entries: Iterable[Mapping[str, str]]) -> str:
    """A digest of inventory entries (`{id, v}`), independent of their order."""
    lines = sorted(f"{entry['id']}\t{entry['v']}" for entry in entries)
    return digest("\n".join(lines).encode())


def recorded(
    status: Mapping[str, Any],
    *,
    digest_: str,
    outcome: Reason,
    finished_at: datetime.datetime,
    duration: datetime.timedelta,
    metadata: Mapping[str, str],
) -> dict[str, Any]:
    """A copy of `status` with this run in `history` (newest first, at most five)."""
    history = [dict(h) for h in status.get("history") or [] if isinstance(h, Mapping)]
    when = timestamp(finished_at)
    same = next(
        (
            h
            for h in history
            if h.get("digest") == digest_ and h.get("lastReconciledStatus") == outcome
        ),
        None,
    )
    if same is None:
        entry: dict[str, Any] = {
            "digest": digest_,
            "firstReconciled": when,
            "lastReconciled": when,
            "lastReconciledDuration": go_duration(duration),
            "lastReconciledStatus": str(outcome),
            "totalReconciliations": 1,
        }
    else:
        history.remove(same)
        entry = {
            **same,
            "lastReconciled": when,
            "lastReconciledDuration": go_duration(duration),
            "totalReconciliations": int(same.get("totalReconciliations", 0)) + 1,
        }
        entry.pop("metadata", None)
    if metadata:  # omitted when empty, as Go's omitempty does
        entry["metadata"] = dict(metadata)
    return {**status, "history": [entry, *history][:HISTORY_LIMIT]}


def revision_metadata(revision: str, origin_revision: str = "") -> dict[str, str]:
    """A history entry's metadata: the revision, and the origin revision when there is one."""
    metadata = {"revision": revision}
    if origin_revision:
        metadata["originRevision"] = origin_revision
    return metadata
