"""Deploy statuses end to end: reconcile observer -> notifier -> queue -> PyGithub / python-gitlab
-> GitHub and GitLab API servers on loopback (the GitHub one checked against its OpenAPI
description), and generic/Slack receivers on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from core.changes import Action, Change, UnitPlan, UnitStatus
from core.fetch import FetchPolicy
from core.model import ObjectRef, UnitKind, UnitRef
from devenv.github_api import FakeGitHub
from reconciler.events import EventRecorder
from reconciler.kustomization.model import ChangeEntry
from reconciler.notification.code_hosts import code_hosts
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.event import Event
from reconciler.notification.lifecycle import DeployReporter, Predictor, sha_of
from reconciler.notification.service import Notifier
from tests.fixtures.github import GITLAB_TOKEN, NO_WAIT, TOKEN
from tests.notification.objects import alert_obj, provider_obj
from tests.notification.receivers import receiver
from tests.notification.store import MemoryStore
from tests.vcs.gitlab_fake import FakeGitLab, FakeProject

OLD = "1" * 40
NEW = "2" * 40
OTHER = "3" * 40
CONTEXT = "kustomization/apps/0c9c2e41"
DEPLOYMENT = ObjectRef("apps", "Deployment", "web", "frontend")
PLAN = UnitPlan(
    unit=UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "apps"),
    status=UnitStatus.RENDERED,
    prune=True,
    changes=(Change(Action.UPDATE, DEPLOYMENT, "apps/v1"),),
)
DRIFTED = (
    ChangeEntry("Deployment/web/frontend", "configured"),
    ChangeEntry("ConfigMap/web/settings", "configured"),
)
AS_PREVIEWED = (
    ChangeEntry("Deployment/web/frontend", "configured"),
    ChangeEntry("ConfigMap/web/settings", "unchanged"),
)


def revision(sha: str) -> str:
    return f"main@sha1:{sha}"


def kustomization(applied: str = "", ready: bool = False) -> dict[str, Any]:
    """The Kustomization as the pipeline reads it at the start of a run."""
    status: dict[str, Any] = {"lastAppliedRevision": applied} if applied else {}
    if applied:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system", "uid": "u-1"},
        "status": status,
    }


def objects(kind: str, address: str) -> list[dict[str, Any]]:
    return [
        provider_obj("code", {"type": kind, "address": address, "secretRef": {"name": "code"}}),
        alert_obj(
            "code",
            {
                "providerRef": {"name": "code"},
                "eventSources": [{"kind": "Kustomization", "name": "*"}],
            },
        ),
    ]


class Harness:
    """The reporter between a real event recorder and a notifier, as the runtime wires them, and
    a driver that calls it as the pipeline does; `settle` waits for the delivery queue."""

    def __init__(
        self, store: MemoryStore, hosts: Sequence[str], predictor: Predictor | None = None
    ) -> None:
        policy = FetchPolicy(allowed_hosts=frozenset(hosts), allow_loopback=True)
        self.dispatcher = Dispatcher(policy)
        self.dispatcher.start()
        self.notifier = Notifier(store, self.dispatcher, hosts=code_hosts(NO_WAIT))
        self.sent: list[tuple[Event, dict[str, Any]]] = []
        self.registry = CollectorRegistry()
        self.reporter = DeployReporter(
            self.notify,
            cluster="prod",
            predictor=predictor
            or (lambda unit, previous, head: PLAN if unit == PLAN.unit else None),
            registry=self.registry,
        )
        self.recorder = EventRecorder(None, [self.reporter.forward], instance="tidegate-0")

    def notify(self, event: Event, **options: Any) -> int:
        self.sent.append((event, options))
        return self.notifier.notify(event, **options)

    def succeed(
        self,
        obj: dict[str, Any],
        sha: str,
        *,
        seconds: float = 14.2,
        changes: Sequence[ChangeEntry] = (),
    ) -> None:
        self.reporter.applying(obj, revision(sha))
        self.reporter.applied(obj, revision(sha), changes=changes, seconds=seconds, healthy=True)
        self.recorder.record(
            obj,
            "info",
            "Reconciliation finished in 14s, next run in 10m",
            revision=revision(sha),
            commit_status=True,
            reason="ReconciliationSucceeded",
        )

    def fail(self, obj: dict[str, Any], sha: str, reason: str, message: str) -> None:
        self.reporter.applying(obj, revision(sha))
        self.reporter.failed(obj, revision(sha), reason, message)
        self.recorder.record(obj, "error", message, revision=revision(sha), reason=reason)

    def settle(self) -> None:
        self.reporter.drain()  # the statuses held back for their previews
        self.dispatcher.drain()

    def mismatches(self) -> float:
        value = self.registry.get_sample_value(
            "tidegate_predicted_mismatch_total", {"namespace": "flux-system", "name": "apps"}
        )
        return value or 0.0


@pytest.fixture
def on_github(github: FakeGitHub) -> Iterator[Harness]:
    origin = github.base_url.removesuffix("/api/v3")
    store = MemoryStore(
        objects("github", f"{origin}/acme/fleet"),
        {("flux-system", "code"): {"token": TOKEN.encode()}},
    )
    harness = Harness(store, [origin.removeprefix("http://")])
    yield harness
    harness.dispatcher.stop()


@pytest.fixture
def on_gitlab(gitlab_fake: FakeGitLab) -> Iterator[Harness]:
    gitlab_fake.projects[7] = FakeProject(7, "acme/fleet")
    store = MemoryStore(
        objects("gitlab", f"{gitlab_fake.url}/acme/fleet.git"),
        {("flux-system", "code"): {"token": GITLAB_TOKEN.encode()}},
    )
    harness = Harness(store, [gitlab_fake.url.removeprefix("http://")])
    yield harness
    harness.dispatcher.stop()


def github_statuses(github: FakeGitHub, sha: str) -> list[tuple[str, str, str]]:
    return [
        (s["state"], s["context"], s["description"])
        for s in github.repos["acme/fleet"].statuses.get(sha, [])
    ]


def gitlab_statuses(gitlab: FakeGitLab, sha: str) -> list[tuple[str, str, str]]:
    return [
        (s["status"], s["name"], s["description"]) for s in gitlab.projects[7].statuses.get(sha, [])
    ]


def test_github_gets_pending_then_success_on_the_exact_commit(
    github: FakeGitHub, on_github: Harness
) -> None:
    on_github.reporter.applying(kustomization(), revision(NEW))
    on_github.settle()
    assert github_statuses(github, NEW) == [("pending", CONTEXT, "applying to prod/apps")]
    on_github.succeed(kustomization(), NEW)
    on_github.settle()
    assert github_statuses(github, NEW) == [
        ("pending", CONTEXT, "applying to prod/apps"),
        ("success", CONTEXT, "applied in 14s, healthy"),
    ]
    assert set(github.repos["acme/fleet"].statuses) == {NEW}
    assert on_github.dispatcher.outcome.failed == 0


def test_gitlab_gets_running_then_success_on_the_exact_commit(
    gitlab_fake: FakeGitLab, on_gitlab: Harness
) -> None:
    on_gitlab.succeed(kustomization(), NEW)
    on_gitlab.settle()
    assert gitlab_statuses(gitlab_fake, NEW) == [
        ("running", CONTEXT, "applying to prod/apps"),
        ("success", CONTEXT, "applied in 14s, healthy"),
    ]
    assert set(gitlab_fake.projects[7].statuses) == {NEW}
    assert ("POST", "/projects/acme/fleet/statuses/" + NEW) in gitlab_fake.requests
    assert on_gitlab.dispatcher.outcome.failed == 0


def test_a_failed_revision_keeps_its_failure_when_a_fix_succeeds_on_its_own_commit(
    github: FakeGitHub, gitlab_fake: FakeGitLab, on_github: Harness, on_gitlab: Harness
) -> None:
    message = "timeout waiting for: [Deployment/web/frontend status: 'InProgress']\nmore"
    for harness in (on_github, on_gitlab):
        harness.fail(kustomization(), OLD, "HealthCheckFailed", message)
        harness.succeed(kustomization(), NEW, seconds=65)
        harness.settle()
    failure = (
        "health check failed: timeout waiting for: [Deployment/web/frontend status: 'InProgress']"
    )
    assert github_statuses(github, OLD)[-1] == ("failure", CONTEXT, failure)
    assert github_statuses(github, NEW)[-1] == ("success", CONTEXT, "applied in 1m5s, healthy")
    assert gitlab_statuses(gitlab_fake, OLD)[-1] == ("failed", CONTEXT, failure)
    assert gitlab_statuses(gitlab_fake, NEW)[-1] == ("success", CONTEXT, "applied in 1m5s, healthy")


def test_redelivery_sets_no_second_status_and_no_second_comment(
    github: FakeGitHub, gitlab_fake: FakeGitLab, on_github: Harness, on_gitlab: Harness
) -> None:
    for harness in (on_github, on_gitlab):
        harness.succeed(kustomization(revision(OLD)), NEW, seconds=3, changes=DRIFTED)
        harness.settle()
        for event, options in list(harness.sent):
            harness.notifier.notify(event, **options)
        harness.settle()
    assert len(github_statuses(github, NEW)) == 2
    assert len(gitlab_statuses(gitlab_fake, NEW)) == 2
    assert len(github.repos["acme/fleet"].commit_comments) == 1
    assert len(gitlab_fake.projects[7].commit_comments[NEW]) == 1


def test_a_mismatch_is_described_counted_and_detailed_on_the_commit(
    github: FakeGitHub, gitlab_fake: FakeGitLab, on_github: Harness, on_gitlab: Harness
) -> None:
    for harness in (on_github, on_gitlab):
        harness.succeed(kustomization(revision(OLD), ready=True), NEW, seconds=3, changes=DRIFTED)
        harness.settle()
        assert harness.mismatches() == 1
    description = "applied in 3s, healthy; applied with 1 difference"
    assert github_statuses(github, NEW)[-1] == ("success", CONTEXT, description)
    assert gitlab_statuses(gitlab_fake, NEW)[-1] == ("success", CONTEXT, description)
    (comment,) = github.repos["acme/fleet"].commit_comments
    (note,) = gitlab_fake.projects[7].commit_comments[NEW]
    for body in (comment["body"], note["note"]):
        assert "`ConfigMap web/settings`" in body
        assert "drift reverted" in body
        assert "Deployment" not in body  # previewed and applied alike: not a difference
    assert comment["commit_id"] == NEW


def test_a_match_says_so_without_a_comment(github: FakeGitHub, on_github: Harness) -> None:
    on_github.succeed(kustomization(revision(OLD)), NEW, seconds=3, changes=AS_PREVIEWED)
    on_github.settle()
    assert github_statuses(github, NEW)[-1] == (
        "success",
        CONTEXT,
        "applied in 3s, healthy; applied as previewed",
    )
    assert github.repos["acme/fleet"].commit_comments == []
    assert on_github.mismatches() == 0


def test_the_periodic_reapply_of_a_ready_revision_posts_nothing_new(
    github: FakeGitHub, on_github: Harness
) -> None:
    on_github.succeed(kustomization(), NEW)
    on_github.settle()
    first = github_statuses(github, NEW)
    on_github.succeed(kustomization(revision(NEW), ready=True), NEW, seconds=2)
    on_github.settle()
    assert github_statuses(github, NEW) == first
    # A failure of the same revision later is news again.
    on_github.fail(kustomization(revision(NEW), ready=True), NEW, "HealthCheckFailed", "gone")
    on_github.settle()
    assert github_statuses(github, NEW)[-1] == ("failure", CONTEXT, "health check failed: gone")


def test_a_revision_that_names_no_commit_sets_nothing(
    github: FakeGitHub, on_github: Harness
) -> None:
    on_github.reporter.applying(kustomization(), "latest")
    on_github.reporter.applying(kustomization(), f"main@sha1:{NEW[:12]}")
    on_github.settle()
    assert github.repos["acme/fleet"].statuses == {}
    assert sha_of(f"refs/heads/main@sha1:{NEW}") == NEW
    assert sha_of(f"sha256:{'a' * 64}") == "a" * 64
    assert sha_of(f"main/{NEW}") is None


def test_a_code_host_outage_does_not_block_the_reconcile(
    github: FakeGitHub, on_github: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    github.fail_next = [502] * 40
    for sha in (OLD, NEW, OTHER):
        on_github.reporter.applying(kustomization(), revision(sha))  # only queued
    on_github.settle()
    assert on_github.dispatcher.outcome.failed == 3
    assert TOKEN not in caplog.text
    github.fail_next = []
    on_github.succeed(kustomization(), NEW)
    on_github.settle()
    assert github_statuses(github, NEW)[-1][0] == "success"


def test_generic_receivers_get_the_lifecycle_events_signed_and_slack_only_the_outcome() -> None:
    key = "CANARY-hmac-key-lifecycle"
    with receiver() as signed, receiver("/api/chat.postMessage") as slack:
        slack.answers = [b'{"ok": true}'] * 5
        store = MemoryStore(
            [
                provider_obj("signed", {"type": "generic-hmac", "secretRef": {"name": "hmac"}}),
                provider_obj("chat", {"type": "slack", "address": slack.url, "channel": "ops"}),
                *(
                    alert_obj(
                        name,
                        {
                            "providerRef": {"name": name},
                            "eventSources": [{"kind": "Kustomization", "name": "apps"}],
                        },
                    )
                    for name in ("signed", "chat")
                ),
            ],
            {("flux-system", "hmac"): {"token": key.encode(), "address": signed.url.encode()}},
        )
        harness = Harness(store, [signed.host, slack.host])
        harness.fail(kustomization(), NEW, "BuildFailed", "kustomize build failed")
        harness.settle()
        harness.dispatcher.stop()
    reasons = []
    for request in signed.received:
        expected = hmac.new(key.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-signature"] == f"sha256={expected}"
        event = json.loads(request.body)
        reasons.append(event["reason"])
        assert event["metadata"]["revision"] == revision(NEW)
        assert key not in request.body.decode()
    assert reasons == ["Progressing", "BuildFailed"]
    # Slack gets the failure; the pending status update stays with git and generic receivers.
    (message,) = [json.loads(r.body) for r in slack.received]
    assert message["attachments"][0]["text"] == "kustomize build failed"


def test_a_notifier_that_fails_never_fails_the_reconcile(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event, **_: Any) -> int:
        raise RuntimeError("Alerts cannot be listed")

    reporter = DeployReporter(broken)
    reporter.applying(kustomization(), revision(NEW))
    reporter.applied(kustomization(), revision(NEW), changes=(), seconds=1, healthy=False)
    recorder = EventRecorder(None, [reporter.forward])
    recorder.record(kustomization(), "info", "done", revision=revision(NEW), commit_status=True)
    assert caplog.text.count("not sent: Alerts cannot be listed") == 2


class _Held:
    """A predictor that starts, then waits until the test lets its preview end (or fail)."""

    def __init__(self, plan: UnitPlan | None = PLAN, *, fails: bool = False) -> None:
        self.plan = plan
        self.fails = fails
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        self.started.set()
        assert self.release.wait(timeout=60)
        if self.fails:
            raise RuntimeError("the preview could not be made")
        return self.plan


def test_the_pipeline_never_waits_for_the_preview_and_the_status_carries_its_verdict(
    github: FakeGitHub,
) -> None:
    origin = github.base_url.removesuffix("/api/v3")
    store = MemoryStore(
        objects("github", f"{origin}/acme/fleet"),
        {("flux-system", "code"): {"token": TOKEN.encode()}},
    )
    held = _Held()
    harness = Harness(store, [origin.removeprefix("http://")], predictor=held)
    try:
        # The whole run, as the pipeline makes it, returns while the preview is still running.
        harness.succeed(kustomization(revision(OLD), ready=True), NEW, seconds=3, changes=DRIFTED)
        assert held.started.wait(timeout=60)
        harness.dispatcher.drain()
        assert github_statuses(github, NEW) == [("pending", CONTEXT, "applying to prod/apps")]
        assert [event.reason for event, _ in harness.sent] == ["Progressing"]
        # When the preview ends, the final status lands on the exact commit with the verdict.
        held.release.set()
        harness.settle()
        description = "applied in 3s, healthy; applied with 1 difference"
        assert github_statuses(github, NEW)[-1] == ("success", CONTEXT, description)
        assert set(github.repos["acme/fleet"].statuses) == {NEW}
        (comment,) = github.repos["acme/fleet"].commit_comments
        assert comment["commit_id"] == NEW
        assert harness.mismatches() == 1
    finally:
        held.release.set()
        harness.reporter.close()
        harness.dispatcher.stop()


def test_a_preview_that_fails_leaves_the_status_without_a_verdict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    held = _Held(fails=True)
    held.release.set()
    sent: list[Event] = []
    reporter = DeployReporter(lambda event, **_: sent.append(event), predictor=held)
    obj = kustomization(revision(OLD), ready=True)
    reporter.applying(obj, revision(NEW))
    reporter.applied(obj, revision(NEW), changes=DRIFTED, seconds=3, healthy=True)
    EventRecorder(None, [reporter.forward]).record(
        obj, "info", "done", revision=revision(NEW), commit_status=True
    )
    reporter.drain()
    assert sent[-1].metadata["kustomize.toolkit.fluxcd.io/commit_status_description"] == (
        "applied in 3s, healthy"
    )
    assert "preview of main@sha1:" in caplog.text


def test_closing_sends_the_statuses_held_for_their_previews() -> None:
    held = _Held()
    sent: list[Event] = []
    reporter = DeployReporter(lambda event, **_: sent.append(event), predictor=held)
    events = EventRecorder(None, [reporter.forward])
    first, second = kustomization(revision(OLD), ready=True), kustomization(revision(OLD))
    second["metadata"]["name"] = "other"
    for obj in (first, second):  # the second preview waits behind the first
        reporter.applying(obj, revision(NEW))
        reporter.applied(obj, revision(NEW), changes=AS_PREVIEWED, seconds=3, healthy=True)
        events.record(obj, "info", "done", revision=revision(NEW), commit_status=True)
    assert held.started.wait(timeout=60)
    assert [event.reason for event in sent] == ["Progressing", "Progressing"]

    closing = threading.Thread(target=reporter.close)
    closing.start()
    held.release.set()
    closing.join(timeout=60)
    assert not closing.is_alive()
    descriptions = {
        event.involved_object.name: event.metadata.get(
            "kustomize.toolkit.fluxcd.io/commit_status_description"
        )
        for event in sent[2:]
    }
    # The preview running ends and is reported; the one not started is not waited for.
    assert descriptions == {
        "apps": "applied in 3s, healthy; applied as previewed",
        "other": "applied in 3s, healthy",
    }

    # A run that ends after: its status goes at once, without a preview.
    third = kustomization(revision(OLD))
    third["metadata"]["name"] = "third"
    held.release.clear()
    reporter.applying(third, revision(NEW))
    reporter.applied(third, revision(NEW), changes=AS_PREVIEWED, seconds=3, healthy=True)
    events.record(third, "info", "done", revision=revision(NEW), commit_status=True)
    assert sent[-1].involved_object.name == "third"
    assert sent[-1].metadata["kustomize.toolkit.fluxcd.io/commit_status_description"] == (
        "applied in 3s, healthy"
    )
