"""Events as Flux records them, with a recording writer at our own seam.

The real apiserver and `kubectl get events` are exercised in tests/cluster/test_health.py.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from core.errors import TidegateError
from reconciler import status as st
from reconciler.events import (
    ERROR,
    INFO,
    SOURCE_CONTROLLER,
    EventRecorder,
    dependency_wait_message,
    finished_message,
    health_passed_message,
)
from reconciler.notification.event import Event, clean_metadata
from reconciler.status_writer import status_patch, write_status

T0 = datetime.datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=datetime.UTC)
REV = "main@sha1:" + "c" * 40


class Writer:
    def __init__(self) -> None:
        self.created: list[tuple[str, dict[str, Any]]] = []
        self.patched: list[tuple[str, str, dict[str, Any]]] = []
        self.gone = False

    def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append((namespace, body))
        return body

    def patch_event(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if self.gone:
            raise TidegateError(f"Event {namespace}/{name} not found")
        self.patched.append((namespace, name, patch))
        return patch


def _ks(reason: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if reason:
        status = {"conditions": [{"type": "Ready", "status": "True", "reason": reason}]}
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": "apps",
            "namespace": "flux-system",
            "uid": "1234",
            "resourceVersion": "77",
        },
        "status": status,
    }


def _recorder(writer: Writer | None, *subscribers: Any) -> EventRecorder:
    return EventRecorder(writer, subscribers, instance="tidegate-0", clock=lambda: T0)


def test_a_success_event_reads_as_fluxs() -> None:
    writer = Writer()
    received: list[Event] = []
    recorder = _recorder(writer, received.append)

    event = recorder.record(
        _ks("ReconciliationSucceeded"),
        INFO,
        finished_message(datetime.timedelta(seconds=1.2), datetime.timedelta(minutes=10)),
        revision=REV,
        commit_status=True,
    )

    assert received == [event]
    assert json.loads(event.to_json()) == {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "flux-system",
            "name": "apps",
            "uid": "1234",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "resourceVersion": "77",
        },
        "severity": "info",
        "timestamp": "2026-11-30T12:00:00Z",
        "message": "Reconciliation finished in 1.2s, next run in 10m0s",
        "reason": "ReconciliationSucceeded",
        "metadata": {
            "kustomize.toolkit.fluxcd.io/commit_status": "update",
            "kustomize.toolkit.fluxcd.io/revision": REV,
        },
        "reportingController": "kustomize-controller",
        "reportingInstance": "tidegate-0",
    }
    assert clean_metadata(event).metadata == {"commit_status": "update", "revision": REV}
    namespace, body = writer.created[0]
    assert namespace == "flux-system"
    assert body["type"] == "Normal"
    assert body["reason"] == "ReconciliationSucceeded"
    assert body["source"] == {"component": "kustomize-controller"}
    assert body["reportingComponent"] == "kustomize-controller"
    assert body["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/revision"] == REV
    assert body["metadata"]["name"] == f"apps.{int(T0.timestamp() * 1e6) * 1000:x}"
    assert body["count"] == 1
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-11-30T12:00:00Z"


def test_an_error_is_a_warning_with_the_ready_reason_and_no_commit_status() -> None:
    writer = Writer()
    ks = _ks()
    failed = st.failed({}, st.Run(1, T0), st.Reason.BUILD_FAILED, "kustomize build failed")

    event = _recorder(writer).record(
        {**ks, "status": failed}, ERROR, "kustomize build failed", revision=REV
    )

    assert event.reason == "BuildFailed"
    assert event.metadata == {"kustomize.toolkit.fluxcd.io/revision": REV}
    assert writer.created[0][1]["type"] == "Warning"


def test_a_source_recorder_reports_as_source_controller() -> None:
    writer = Writer()
    recorder = EventRecorder(writer, controller=SOURCE_CONTROLLER, clock=lambda: T0)
    repo = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": "flux-system", "uid": "9"},
    }

    event = recorder.record(repo, INFO, "stored artifact for commit 'x'", reason="NewArtifact")

    assert event.reporting_controller == "source-controller"
    assert event.metadata == {}
    body = writer.created[0][1]
    assert body["source"] == {"component": "source-controller"}
    assert body["reportingComponent"] == "source-controller"
    assert body["reason"] == "NewArtifact"


def test_without_a_ready_condition_the_reason_is_the_severity() -> None:
    assert _recorder(None).record(_ks(), INFO, "x").reason == "info"


def test_identical_repeats_bump_the_count_instead_of_new_events() -> None:
    writer = Writer()
    recorder = _recorder(writer)

    for _ in range(3):
        recorder.record(_ks(), ERROR, "same failure")
    recorder.record(_ks(), ERROR, "another failure")

    assert len(writer.created) == 2
    name = writer.created[0][1]["metadata"]["name"]
    assert [(n, p["count"]) for _, n, p in writer.patched] == [(name, 2), (name, 3)]


def test_a_repeat_whose_event_is_gone_is_recorded_afresh() -> None:
    writer = Writer()
    recorder = _recorder(writer)
    recorder.record(_ks(), ERROR, "same failure")
    writer.gone = True

    recorder.record(_ks(), ERROR, "same failure")

    assert len(writer.created) == 2


def test_every_subscriber_gets_every_event_even_when_one_fails() -> None:
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    recorder = _recorder(None, broken, lambda e: got.append(e.message))
    recorder.subscribe(lambda e: got.append("late:" + e.message))

    recorder.record(_ks(), INFO, "one")
    recorder.record(_ks(), INFO, "one")

    assert got == ["one", "late:one", "one", "late:one"]


def test_an_apiserver_refusal_does_not_stop_the_subscribers() -> None:
    class Refusing(Writer):
        def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
            raise TidegateError("Event: HTTP 403: forbidden")

    got: list[Event] = []
    _recorder(Refusing(), got.append).record(_ks(), INFO, "x")

    assert len(got) == 1


def test_severity_is_checked() -> None:
    with pytest.raises(ValueError, match="severity"):
        _recorder(None).record(_ks(), "warning", "x")


def test_flux_messages() -> None:
    assert health_passed_message(datetime.timedelta(seconds=2.5)) == "Health check passed in 2.5s"
    assert dependency_wait_message(datetime.timedelta(seconds=30)) == (
        "Dependencies do not meet ready condition, retrying in 30s"
    )


# --- the status patch ---------------------------------------------------------------------------


def test_the_status_patch_carries_only_changes_and_nulls_removed_fields() -> None:
    before = {"observedGeneration": 1, "lastAttemptedRevision": "a", "conditions": [{"x": 1}]}
    after = {"observedGeneration": 1, "conditions": [{"x": 2}], "lastAppliedRevision": "b"}

    assert status_patch(before, after) == {
        "conditions": [{"x": 2}],
        "lastAppliedRevision": "b",
        "lastAttemptedRevision": None,
    }


class Patcher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []

    def merge_patch_status(
        self, kind: Any, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append((kind.kind, namespace, name, patch))
        return {"patched": True}


def test_write_status_sends_one_patch_with_an_optional_lock() -> None:
    patcher = Patcher()
    obj = {**_ks(), "status": {"observedGeneration": -1}}

    result = write_status(patcher, obj, {"observedGeneration": 3}, lock=True)

    assert result == {"patched": True}
    assert patcher.calls == [
        (
            "Kustomization",
            "flux-system",
            "apps",
            {"status": {"observedGeneration": 3}, "metadata": {"resourceVersion": "77"}},
        ),
    ]


def test_an_unchanged_status_is_not_written() -> None:
    patcher = Patcher()
    obj = {**_ks(), "status": {"observedGeneration": 3}}

    assert write_status(patcher, obj, {"observedGeneration": 3}) == obj
    assert patcher.calls == []


def test_the_recorder_takes_the_pipelines_events_as_they_are() -> None:
    writer = Writer()
    got: list[Event] = []
    metadata = {"kustomize.toolkit.fluxcd.io/revision": REV}

    _recorder(writer, got.append).event(
        _ks(), severity=ERROR, reason="ArtifactFailed", message="no artifact", metadata=metadata
    )

    assert (got[0].reason, got[0].message, dict(got[0].metadata)) == (
        "ArtifactFailed",
        "no artifact",
        metadata,
    )
    body = writer.created[0][1]
    assert (body["type"], body["reason"]) == ("Warning", "ArtifactFailed")
    assert body["metadata"]["annotations"] == metadata
