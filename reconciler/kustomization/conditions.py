"""Status bookkeeping for the pipeline: conditions and history in Flux's shape (a stand-in).

`reconciler.status` is the reconciler's shared status module; until the pipeline switches to it,
this small module keeps the same rules: `metav1.Condition` entries carry `observedGeneration`,
`lastTransitionTime` changes only when the status changes, and `status.history` keeps at most 5
snapshots, newest first, upserted by digest and result. Pure functions on plain dicts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["HISTORY_LIMIT", "remove_condition", "set_condition", "timestamp", "upsert_history"]

HISTORY_LIMIT = 5
MAX_MESSAGE = 20_000
"""Flux's `MaxConditionMessageLength`."""


def timestamp(now: dt.datetime) -> str:
    """RFC 3339 in UTC with seconds, as `metav1.Time` serializes."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    generation: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """`conditions` with `kind` set; the transition time is kept while the status is unchanged."""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    out: list[dict[str, Any]] = []
    found = False
    for item in conditions:
        if item.get("type") != kind:
            out.append(dict(item))
            continue
        found = True
        changed = item.get("status") != status
        out.append(
            {
                "type": kind,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": timestamp(now)
                if changed
                else item.get("lastTransitionTime", timestamp(now)),
                "reason": reason,
                "message": message,
            }
        )
    if not found:
        out.append(
            {
                "type": kind,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": timestamp(now),
                "reason": reason,
                "message": message,
            }
        )
    return _ordered(out)


def remove_condition(conditions: Sequence[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    """`conditions` without `kind`."""
    return [dict(item) for item in conditions if item.get("type") != kind]


_ORDER = {"Ready": 0, "Reconciling": 1, "Stalled": 2, "Healthy": 3}


def _ordered(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Flux's condition summary puts Ready first; the rest keep their order.
    return sorted(conditions, key=lambda item: _ORDER.get(str(item.get("type")), 9))


def upsert_history(
    history: Sequence[Mapping[str, Any]],
    *,
    digest: str,
    status: str,
    revision: str,
    origin_revision: str | None,
    now: dt.datetime,
    duration: str,
) -> list[dict[str, Any]]:
    """Flux's `History.Upsert`: bump the entry with the same digest and status, else prepend."""
    metadata = {"revision": revision}
    if origin_revision:
        metadata["originRevision"] = origin_revision
    entries = [dict(item) for item in history]
    for index, item in enumerate(entries):
        if item.get("digest") == digest and item.get("lastReconciledStatus") == status:
            item.update(
                lastReconciled=timestamp(now),
                lastReconciledDuration=duration,
                totalReconciliations=int(item.get("totalReconciliations") or 0) + 1,
                metadata=metadata,
            )
            entries.insert(0, entries.pop(index))
            return entries[:HISTORY_LIMIT]
    entries.insert(
        0,
        {
            "digest": digest,
            "firstReconciled": timestamp(now),
            "lastReconciled": timestamp(now),
            "lastReconciledDuration": duration,
            "lastReconciledStatus": status,
            "totalReconciliations": 1,
            "metadata": metadata,
        },
    )
    return entries[:HISTORY_LIMIT]
