"""Routing follows Flux's event server: sources, severity, regex lists, suspend, metadata merge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.notification.event import ObjectReference
from reconciler.notification.objects import parse_alert
from reconciler.notification.routing import matching_alerts, notification_for
from tests.notification.objects import alert_obj, ks_event


def no_labels(_: ObjectReference) -> Mapping[str, str]:
    return {}


def alert(name: str = "a", **spec: Any) -> Any:
    spec.setdefault("providerRef", {"name": "hook"})
    spec.setdefault("eventSources", [{"kind": "Kustomization", "name": "apps"}])
    return parse_alert(alert_obj(name, spec))


def selected(alerts: list[Any], event: Any, labels: Any = no_labels) -> list[str]:
    return [a.name for a in matching_alerts(alerts, event, labels)]


def test_info_alert_gets_info_and_errors_error_alert_only_errors() -> None:
    alerts = [alert("info"), alert("error", eventSeverity="error")]
    assert selected(alerts, ks_event()) == ["info"]
    assert selected(alerts, ks_event(severity="error")) == ["info", "error"]


def test_source_needs_same_kind_name_and_namespace() -> None:
    alerts = [
        alert("other-name", eventSources=[{"kind": "Kustomization", "name": "infra"}]),
        alert("other-kind", eventSources=[{"kind": "HelmRelease", "name": "apps"}]),
        alert(
            "other-ns",
            eventSources=[{"kind": "Kustomization", "name": "apps", "namespace": "team"}],
        ),
        alert("match"),
    ]
    assert selected(alerts, ks_event()) == ["match"]
    assert selected(alerts, ks_event(namespace="team")) == ["other-ns"]


def test_wildcard_with_and_without_match_labels() -> None:
    star = alert("star", eventSources=[{"kind": "Kustomization", "name": "*"}])
    labelled = alert(
        "labelled",
        eventSources=[{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "web"}}],
    )

    def labels(involved: ObjectReference) -> Mapping[str, str]:
        return {"team": "web"} if involved.name == "web" else {"team": "db"}

    assert selected([star, labelled], ks_event("web"), labels) == ["star", "labelled"]
    assert selected([star, labelled], ks_event("db"), labels) == ["star"]


def test_inclusion_and_exclusion_lists_use_re2_search() -> None:
    included = alert("in", inclusionList=[r"^Reconciliation", "Health check"])
    excluded = alert("ex", exclusionList=["next run in [0-9]+m"])
    both = alert("both", inclusionList=["apply"], exclusionList=["dry-run"])
    assert selected([included, excluded, both], ks_event()) == ["in"]
    applied = ks_event(message="Kustomization/apps apply configured")
    assert selected([included, excluded, both], applied) == ["ex", "both"]
    assert selected([both], ks_event(message="apply dry-run failed")) == []


def test_suspended_alert_gets_nothing() -> None:
    assert selected([alert(suspend=True)], ks_event(severity="error")) == []


def test_metadata_merge_event_wins_over_summary_over_event_metadata() -> None:
    merged = notification_for(
        alert(
            summary="prod cluster",
            eventMetadata={"env": "prod", "revision": "alert's", "summary": "meta's"},
        ),
        ks_event(metadata={"revision": "main@sha1:ab"}),
    )
    assert dict(merged.metadata) == {
        "env": "prod",
        "summary": "prod cluster",
        "revision": "main@sha1:ab",
    }
