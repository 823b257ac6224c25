"""The Kustomization status state machine: Flux's conditions, reasons, messages and history."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from core.errors import Failure
from core.health import Status, compute
from reconciler import status as st
from reconciler.status import Reason, Run

T0 = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=1)
REV = "main@sha1:" + "a" * 40
REV2 = "main@sha1:" + "b" * 40
TIMEOUT = datetime.timedelta(minutes=5)


def _by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def _kustomization(status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system", "generation": generation},
        "status": status,
    }


def test_a_run_starts_progressing_with_flux_messages() -> None:
    status = st.started({"observedGeneration": -1}, Run(1, T0), st.fetching_message(REV, TIMEOUT))

    conditions = _by_type(status)
    assert conditions["Ready"] == {
        "type": "Ready",
        "status": "Unknown",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-11-30T12:00:00Z",
        "reason": "Progressing",
        "message": "Reconciliation in progress",
    }
    assert conditions["Reconciling"]["status"] == "True"
    assert conditions["Reconciling"]["message"] == (
        f"Fetching manifests for revision {REV} with a timeout of 5m0s"
    )
    assert compute(_kustomization(status)).status is Status.IN_PROGRESS


def test_phase_messages() -> None:
    assert st.building_message(REV, TIMEOUT) == (
        f"Building manifests for revision {REV} with a timeout of 5m0s"
    )
    assert st.detecting_drift_message(REV, datetime.timedelta(seconds=30)) == (
        f"Detecting drift for revision {REV} with a timeout of 30s"
    )
    assert st.health_check_message(REV, datetime.timedelta(hours=1)) == (
        f"Running health checks for revision {REV} with a timeout of 1h0m0s"
    )


def test_success_is_ready_with_the_applied_revision_and_no_reconciling() -> None:
    run = Run(2, T1)
    status = st.started({}, Run(2, T0), "x")
    status = st.health_progressing(status, run, st.health_check_message(REV, TIMEOUT))
    status = st.succeeded(status, run, REV, health_checked=datetime.timedelta(seconds=2.818583))
    status = st.finished(status, run, "2026-11-30T11:59:00Z")

    conditions = _by_type(status)
    assert set(conditions) == {"Ready", "Healthy"}
    assert conditions["Ready"]["reason"] == "ReconciliationSucceeded"
    assert conditions["Ready"]["message"] == f"Applied revision: {REV}"
    assert conditions["Healthy"]["reason"] == "Succeeded"
    assert conditions["Healthy"]["message"] == "Health check passed in 2.818583s"
    assert status["lastAppliedRevision"] == REV
    assert status["observedGeneration"] == 2
    assert status["lastHandledReconcileAt"] == "2026-11-30T11:59:00Z"
    assert compute(_kustomization(status, generation=2)).status is Status.CURRENT


def test_success_without_health_checks_drops_healthy() -> None:
    status = st.health_progressing({}, Run(1, T0), "checking")

    status = st.succeeded(status, Run(1, T1), REV)

    assert "Healthy" not in _by_type(status)


def test_a_retryable_failure_stays_reconciling_with_retry() -> None:
    run = Run(3, T1)
    status = st.started({"observedGeneration": 2}, Run(3, T0), st.building_message(REV, TIMEOUT))

    status = st.failed(status, run, Reason.BUILD_FAILED, "kustomize build failed: boom")
    status = st.finished(status, run, None)

    conditions = _by_type(status)
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "BuildFailed"
    assert conditions["Ready"]["message"] == "kustomize build failed: boom"
    assert conditions["Reconciling"]["reason"] == "ProgressingWithRetry"
    assert conditions["Reconciling"]["message"] == st.building_message(REV, TIMEOUT)
    assert "Stalled" not in conditions
    assert status["observedGeneration"] == 2  # not observed: a retry will come
    assert "lastHandledReconcileAt" not in status
    assert compute(_kustomization(status, generation=3)).status is Status.IN_PROGRESS


def test_a_health_check_failure_also_marks_healthy_false() -> None:
    status = st.failed({}, Run(1, T0), Reason.HEALTH_CHECK_FAILED, "health check failed after 1s")

    assert _by_type(status)["Healthy"]["status"] == "False"
    assert _by_type(status)["Healthy"]["reason"] == "HealthCheckFailed"


@pytest.mark.parametrize(
    "reason", [Reason.ACCESS_DENIED, Reason.INVALID_CEL_EXPRESSION, Reason.FEATURE_GATE_DISABLED]
)
def test_a_terminal_failure_is_stalled(reason: Reason) -> None:
    status = st.started({}, Run(4, T0), "x")

    status = st.finished(st.failed(status, Run(4, T0), reason, "bad"), Run(4, T0), None)

    conditions = _by_type(status)
    message = "Reconciliation failed terminally due to configuration error: bad"
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == reason
    assert conditions["Ready"]["message"] == message
    assert "Reconciling" not in conditions
    assert status["observedGeneration"] == 4
    assert compute(_kustomization(status, generation=4)).status is Status.FAILED


def test_the_transition_time_moves_only_when_the_state_changes() -> None:
    first = st.set_condition({}, "Ready", "False", "BuildFailed", "a", generation=1, now=T0)
    same = st.set_condition(first, "Ready", "False", "BuildFailed", "a", generation=2, now=T1)
    reworded = st.set_condition(same, "Ready", "False", "BuildFailed", "b", generation=2, now=T1)
    flipped = st.set_condition(
        first, "Ready", "True", "ReconciliationSucceeded", "a", generation=1, now=T1
    )

    assert _by_type(same)["Ready"]["lastTransitionTime"] == "2026-11-30T12:00:00Z"
    assert _by_type(same)["Ready"]["observedGeneration"] == 2
    assert _by_type(reworded)["Ready"]["lastTransitionTime"] == "2026-11-30T12:01:00Z"
    assert _by_type(flipped)["Ready"]["lastTransitionTime"] == "2026-11-30T12:01:00Z"


def test_conditions_are_in_fluxs_order() -> None:
    status: dict[str, Any] = {}
    for type_ in ("Healthy", "Ready", "Artifact", "Reconciling", "Stalled"):
        status = st.set_condition(status, type_, "True", "R", "m", generation=1, now=T0)

    assert [c["type"] for c in status["conditions"]] == [
        "Stalled",
        "Reconciling",
        "Ready",
        "Artifact",
        "Healthy",
    ]


def test_healthy_carries_the_waits_own_error() -> None:
    message = "health check failed after 30.5s: timeout waiting for: [Deployment/a/b status: 'x']"

    derived = st.failed({}, Run(1, T0), Reason.HEALTH_CHECK_FAILED, message)
    given = st.failed({}, Run(1, T0), Reason.HEALTH_CHECK_FAILED, message, detail="given")

    assert _by_type(derived)["Ready"]["message"] == message
    assert _by_type(derived)["Healthy"]["message"] == (
        "timeout waiting for: [Deployment/a/b status: 'x']"
    )
    assert _by_type(given)["Healthy"]["message"] == "given"


def test_condition_messages_are_capped() -> None:
    status = st.set_condition(
        {}, "Ready", "False", "BuildFailed", "x" * 30_000, generation=1, now=T0
    )

    assert len(_by_type(status)["Ready"]["message"]) == 20_000


def test_updates_never_change_the_input() -> None:
    original: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True"}]}

    st.failed(original, Run(1, T0), Reason.BUILD_FAILED, "x")

    assert original == {"conditions": [{"type": "Ready", "status": "True"}]}


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Failure.SOURCE, "ArtifactFailed"),
        (Failure.BUILD, "BuildFailed"),
        (Failure.INPUT, "BuildFailed"),
        (Failure.DEPENDENCY, "BuildFailed"),
        (Failure.BUDGET, "BuildFailed"),
        (Failure.WITHHELD, "ReconciliationFailed"),
        (Failure.INTERNAL, "ReconciliationFailed"),
    ],
)
def test_typed_render_failures_map_to_flux_reasons(failure: Failure, reason: str) -> None:
    assert st.reason_for(failure) == reason


def test_every_failure_kind_has_a_reason() -> None:
    assert {st.reason_for(f) for f in Failure} <= set(Reason)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (0, "0s"),
        (0.0005, "500µs"),
        (0.25, "250ms"),
        (1.5, "1.5s"),
        (2.818583, "2.818583s"),
        (30, "30s"),
        (300, "5m0s"),
        (90.004, "1m30.004s"),
        (3600, "1h0m0s"),
        (datetime.timedelta(minutes=2, microseconds=1), "2m0.000001s"),
    ],
)
def test_durations_read_as_go_prints_them(duration: float | datetime.timedelta, text: str) -> None:
    assert st.go_duration(duration) == text


def _record(
    status: dict[str, Any],
    digest: str,
    outcome: Reason,
    when: datetime.datetime,
    revision: str = REV,
) -> dict[str, Any]:
    return st.recorded(
        status,
        digest_=digest,
        outcome=outcome,
        finished_at=when,
        duration=datetime.timedelta(seconds=1.5),
        metadata=st.revision_metadata(revision),
    )


def test_history_counts_repeats_and_keeps_the_newest_first() -> None:
    status = _record({}, "sha256:1", Reason.RECONCILIATION_SUCCEEDED, T0)
    status = _record(status, "sha256:2", Reason.HEALTH_CHECK_FAILED, T1, REV2)
    status = _record(
        status, "sha256:1", Reason.RECONCILIATION_SUCCEEDED, T1 + datetime.timedelta(minutes=1)
    )

    history = status["history"]
    assert [h["digest"] for h in history] == ["sha256:1", "sha256:2"]
    assert history[0] == {
        "digest": "sha256:1",
        "firstReconciled": "2026-11-30T12:00:00Z",
        "lastReconciled": "2026-11-30T12:02:00Z",
        "lastReconciledDuration": "1.5s",
        "lastReconciledStatus": "ReconciliationSucceeded",
        "totalReconciliations": 2,
        "metadata": {"revision": REV},
    }
    assert list(history[0]) == [
        "digest",
        "firstReconciled",
        "lastReconciled",
        "lastReconciledDuration",
        "lastReconciledStatus",
        "totalReconciliations",
        "metadata",
    ]


def test_the_same_digest_with_another_outcome_is_a_new_entry() -> None:
    status = _record({}, "sha256:1", Reason.RECONCILIATION_SUCCEEDED, T0)
    status = _record(status, "sha256:1", Reason.HEALTH_CHECK_FAILED, T1)

    assert [h["lastReconciledStatus"] for h in status["history"]] == [
        "HealthCheckFailed",
        "ReconciliationSucceeded",
    ]


def test_history_metadata_is_left_out_when_empty() -> None:
    status = st.recorded(
        {},
        digest_="sha256:1",
        outcome=Reason.RECONCILIATION_SUCCEEDED,
        finished_at=T0,
        duration=datetime.timedelta(seconds=1),
        metadata={},
    )

    assert "metadata" not in status["history"][0]


def test_history_keeps_five_entries() -> None:
    status: dict[str, Any] = {}
    for i in range(7):
        status = _record(
            status,
            f"sha256:{i}",
            Reason.RECONCILIATION_SUCCEEDED,
            T0 + datetime.timedelta(minutes=i),
        )

    assert [h["digest"] for h in status["history"]] == [f"sha256:{i}" for i in (6, 5, 4, 3, 2)]


def test_digests() -> None:
    assert st.digest(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    entries = [
        {"id": "default_a__Service", "v": "v1"},
        {"id": "default_b_apps_Deployment", "v": "v1"},
    ]
    assert st.inventory_digest(entries) == st.inventory_digest(list(reversed(entries)))
    assert st.inventory_digest(entries) != st.inventory_digest(entries[:1])
