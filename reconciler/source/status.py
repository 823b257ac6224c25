"""A GitRepository's status as source-controller writes it: pure transitions, no I/O.

- Every run: Stalled goes; `lastHandledReconcileAt` becomes the `requestedAt` annotation.
- Progressing (a new generation, before fetching): Reconciling=True and Ready=Unknown, reason
  Progressing, "processing object: new generation <old> -> <new>", so kstatus and `flux` read
  the object as in progress while the fetch runs.
- Stored (success): Ready=True/Succeeded and ArtifactInStorage=True/Succeeded, both "stored
  artifact for revision '<rev>'"; Reconciling, FetchFailed, StorageOperationFailed and
  ArtifactOutdated go; `artifact`, `observedGeneration` and `observedIgnore` are set.
- Failed (fetch, credentials, storage): Ready=False and the failure's condition (FetchFailed or
  StorageOperationFailed) True with the reason and message; Reconciling=True/ProgressingWithRetry
  with "processing object: new generation <old> -> <new>" when the generation moved, else
  "reconciliation in progress". The last artifact and ArtifactInStorage stay, so consumers keep
  using the last good revision; `observedGeneration` stays.
- Stalled (a spec that cannot work until edited): Ready=False and Stalled=True with the reason,
  Reconciling gone, `observedGeneration` set (kstatus then reads the object as failed, not in
  progress).

Conditions use `reconciler.status`'s rules (transition time moves only on a status change,
messages capped). Messages must already be Secret-free.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from reconciler.status import (
    READY,
    RECONCILING,
    STALLED,
    remove_condition,
    set_condition,
    timestamp,
)

__all__ = [
    "ARTIFACT_IN_STORAGE",
    "ARTIFACT_OUTDATED",
    "FETCH_FAILED",
    "STORAGE_OPERATION_FAILED",
    "failed",
    "progressing",
    "stalled",
    "stored",
    "stored_message",
]

ARTIFACT_IN_STORAGE = "ArtifactInStorage"
ARTIFACT_OUTDATED = "ArtifactOutdated"
FETCH_FAILED = "FetchFailed"
STORAGE_OPERATION_FAILED = "StorageOperationFailed"
SUCCEEDED = "Succeeded"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"


def stored_message(revision: str) -> str:
    """The Ready and ArtifactInStorage message of a stored artifact."""
    return f"stored artifact for revision '{revision}'"


def stored(
    status: Mapping[str, Any],
    *,
    artifact: Mapping[str, Any],
    generation: int,
    ignore: str | None,
    requested_at: str | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The status after an artifact for the fetched revision is in storage."""
    message = stored_message(str(artifact["revision"]))
    result = _begin(status, requested_at)
    for type_ in (ARTIFACT_IN_STORAGE, READY):
        result = set_condition(
            result, type_, "True", SUCCEEDED, message, generation=generation, now=now
        )
    for type_ in (RECONCILING, FETCH_FAILED, STORAGE_OPERATION_FAILED, ARTIFACT_OUTDATED):
        result = remove_condition(result, type_)
    result["artifact"] = dict(artifact)
    result["observedGeneration"] = generation
    if ignore is None:
        result.pop("observedIgnore", None)
    else:
        result["observedIgnore"] = ignore
    return _ordered(result)


def generation_message(status: Mapping[str, Any], generation: int) -> str:
    """Flux's message for a run of a generation it has not observed yet, else "" ."""
    observed = status.get("observedGeneration")
    if observed == generation:
        return ""
    before = observed if isinstance(observed, int) else -1
    return f"processing object: new generation {before} -> {generation}"


def progressing(
    status: Mapping[str, Any], *, generation: int, now: datetime.datetime
) -> dict[str, Any]:
    """The status persisted before fetching a new generation."""
    message = generation_message(status, generation)
    result = remove_condition(status, STALLED)
    for type_, value in ((RECONCILING, "True"), (READY, "Unknown")):
        result = set_condition(
            result, type_, value, PROGRESSING, message, generation=generation, now=now
        )
    return _ordered(result)


def failed(
    status: Mapping[str, Any],
    *,
    condition: str,
    reason: str,
    message: str,
    generation: int,
    requested_at: str | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The status after a retryable failure; the last artifact stays."""
    result = _begin(status, requested_at)
    result = set_condition(
        result, condition, "True", reason, message, generation=generation, now=now
    )
    result = set_condition(result, READY, "False", reason, message, generation=generation, now=now)
    progress = generation_message(status, generation) or "reconciliation in progress"
    result = set_condition(
        result,
        RECONCILING,
        "True",
        PROGRESSING_WITH_RETRY,
        progress,
        generation=generation,
        now=now,
    )
    return _ordered(result)


def stalled(
    status: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    generation: int,
    requested_at: str | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The status of a spec that cannot work until it is changed."""
    result = _begin(status, requested_at)
    result = remove_condition(result, RECONCILING)
    for type_, value in ((STALLED, "True"), (READY, "False")):
        result = set_condition(
            result, type_, value, reason, message, generation=generation, now=now
        )
    result["observedGeneration"] = generation
    return _ordered(result)


def _begin(status: Mapping[str, Any], requested_at: str | None) -> dict[str, Any]:
    result = remove_condition(status, STALLED)
    if requested_at is not None:
        result["lastHandledReconcileAt"] = requested_at
    return result


# Flux lists Ready first; kubectl describe and humans read it that way.
_ORDER = (READY, STALLED, RECONCILING, ARTIFACT_IN_STORAGE, FETCH_FAILED)


def _ordered(status: dict[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions") or []
    rank = {type_: index for index, type_ in enumerate(_ORDER)}
    status["conditions"] = sorted(
        conditions, key=lambda c: rank.get(str(c.get("type")), len(_ORDER))
    )
    return status


def artifact_record(
    *, path: str, url: str, revision: str, digest: str, size: int, now: datetime.datetime
) -> dict[str, Any]:
    """`status.artifact` as Flux writes it."""
    return {
        "digest": digest,
        "lastUpdateTime": timestamp(now),
        "path": path,
        "revision": revision,
        "size": size,
        "url": url,
    }
