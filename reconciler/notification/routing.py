"""Which Alerts an event reaches, and the event each of them sends (Flux's event server rules).

Rules, in Flux's order, for each Alert:
1. a suspended Alert receives nothing;
2. with an `inclusionList`, the message must match one of its patterns;
3. a message matching any `exclusionList` pattern is dropped;
4. one event source must match: same kind and namespace (defaulted to the Alert's), name equal
   or `*`, `matchLabels` (only with `*`) matching the involved object's labels, and severity:
   an `info` Alert receives info and error events, an `error` Alert only errors.
The event an Alert sends carries metadata merged as Flux merges it: the Alert's
`eventMetadata`, then its `summary` under `summary`, then the event's own metadata, each later
source winning a conflict. Patterns are searched anywhere in the message (Go's `Match`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from reconciler.notification.event import ERROR, Event, ObjectReference
from reconciler.notification.objects import Alert, EventSource
from reconciler.notification.patterns import compile_regex

__all__ = ["LabelLookup", "matching_alerts", "notification_for"]

LabelLookup = Callable[[ObjectReference], Mapping[str, str]]
"""The involved object's labels (empty when it cannot be read)."""


def matching_alerts(alerts: Iterable[Alert], event: Event, labels: LabelLookup) -> list[Alert]:
    """The Alerts that receive `event`, in the given order."""
    return [alert for alert in alerts if _receives(alert, event, labels)]


def notification_for(alert: Alert, event: Event) -> Event:
    """The event as `alert` sends it, with its metadata merged in."""
    merged = dict(alert.event_metadata)
    if alert.summary:
        merged["summary"] = alert.summary
    merged.update(event.metadata)
    return event.with_metadata(merged)


def _receives(alert: Alert, event: Event, labels: LabelLookup) -> bool:
    if alert.suspend:
        return False
    if alert.inclusion_list and not _any_match(alert.inclusion_list, event.message):
        return False
    if _any_match(alert.exclusion_list, event.message):
        return False
    return any(_source_matches(source, alert, event, labels) for source in alert.event_sources)


def _any_match(patterns: Iterable[str], message: str) -> bool:
    for pattern in patterns:
        compiled = compile_regex(pattern)
        if compiled is not None and compiled.search(message):
            return True
    return False


def _source_matches(source: EventSource, alert: Alert, event: Event, labels: LabelLookup) -> bool:
    involved = event.involved_object
    if involved.kind != source.kind or involved.namespace != source.namespace:
        return False
    if alert.event_severity == ERROR and event.severity != ERROR:
        return False
    if source.name == "*":
        if not source.match_labels:
            return True
        have = labels(involved)
        return all(have.get(key) == value for key, value in source.match_labels.items())
    return involved.name == source.name
