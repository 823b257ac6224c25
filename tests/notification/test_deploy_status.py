"""Deploy statuses end to end: reconcile observer -> notifier -> queue -> PyGithub / python-gitlab
-> GitHub and GitLab API servers on loopback (the GitHub one checked against its OpenAPI
description), and generic/Slack receivers on loopback."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from core.changes import Action, Change, UnitPlan, UnitStatus
from core.fetch import FetchPolicy
from core.model import ObjectRef, UnitKind, UnitRef
from core.predicted import Applied, compare
from reconciler.notification.code_hosts import code_hosts
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.lifecycle import DeployReporter, Kustomization, go_duration, sha_of
from reconciler.notification.service import Notifier
from tests.fixtures.github import GITLAB_TOKEN, NO_WAIT, TOKEN
from tests.notification.objects import alert_obj, provider_obj
from tests.notification.receivers import receiver
from tests.notification.store import MemoryStore
from tests.vcs.github_fake import FakeGitHub
from tests.vcs.gitlab_fake import FakeGitLab, FakeProject

OLD = "1" * 40
NEW = "2" * 40
OTHER = "3" * 40
CONTEXT = "kustomization/apps/0c9c2e41"
KS = Kustomization("flux-system", "apps", uid="u-1")
DEPLOYMENT = ObjectRef("apps", "Deployment", "web", "frontend")
CONFIG = ObjectRef("", "ConfigMap", "web", "settings")
PLAN = UnitPlan(
    unit=UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "apps"),
    status=UnitStatus.RENDERED,
    prune=True,
    changes=(Change(Action.UPDATE, DEPLOYMENT, "apps/v1"),),
)


def revision(sha: str) -> str:
    return f"main@sha1:{sha}"


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
    """A reporter wired to a notifier and a started dispatcher; `settle` waits for the queue."""

    def __init__(self, store: MemoryStore, hosts: Sequence[str]) -> None:
        policy = FetchPolicy(allowed_hosts=frozenset(hosts), allow_loopback=True)
        self.dispatcher = Dispatcher(policy)
        self.dispatcher.start()
        self.registry = CollectorRegistry()
        self.reporter = DeployReporter(
            Notifier(store, self.dispatcher, hosts=code_hosts(NO_WAIT)).notify,
            cluster="prod",
            registry=self.registry,
            now=lambda: datetime.datetime(2026, 11, 30, 9, 0, tzinfo=datetime.UTC),
        )

    def settle(self) -> None:
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
    assert on_github.reporter.applying(KS, revision(NEW))
    on_github.settle()
    assert github_statuses(github, NEW) == [("pending", CONTEXT, "applying to prod/apps")]
    assert on_github.reporter.applied(KS, revision(NEW), 14.2, healthy=True)
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
    on_gitlab.reporter.applying(KS, revision(NEW))
    on_gitlab.settle()
    on_gitlab.reporter.applied(KS, revision(NEW), 14, healthy=True)
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
    for harness in (on_github, on_gitlab):
        harness.reporter.applying(KS, revision(OLD))
        harness.reporter.failed(
            KS,
            revision(OLD),
            "HealthCheckFailed",
            "timeout waiting for: [Deployment/web/frontend status: 'InProgress']\nmore",
        )
        harness.reporter.applying(KS, revision(NEW))
        harness.reporter.applied(KS, revision(NEW), 65, healthy=True)
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
    drifted = compare(PLAN, {DEPLOYMENT: Applied.CONFIGURED, CONFIG: Applied.CONFIGURED})
    for harness in (on_github, on_gitlab):
        for _ in range(2):
            harness.reporter.applying(KS, revision(NEW))
            harness.settle()
        for _ in range(2):
            harness.reporter.applied(KS, revision(NEW), 3, healthy=True, comparison=drifted)
            harness.settle()
    assert len(github_statuses(github, NEW)) == 2
    assert len(gitlab_statuses(gitlab_fake, NEW)) == 2
    assert len(github.repos["acme/fleet"].commit_comments) == 1
    assert len(gitlab_fake.projects[7].commit_comments[NEW]) == 1


def test_a_mismatch_is_described_counted_and_detailed_on_the_commit(
    github: FakeGitHub, gitlab_fake: FakeGitLab, on_github: Harness, on_gitlab: Harness
) -> None:
    drifted = compare(PLAN, {DEPLOYMENT: Applied.CONFIGURED, CONFIG: Applied.CONFIGURED})
    for harness in (on_github, on_gitlab):
        harness.reporter.applied(KS, revision(NEW), 3, healthy=True, comparison=drifted)
        harness.settle()
        assert harness.mismatches() == 1
    description = "applied in 3s, healthy; applied with 1 difference"
    assert github_statuses(github, NEW) == [("success", CONTEXT, description)]
    assert gitlab_statuses(gitlab_fake, NEW) == [("success", CONTEXT, description)]
    (comment,) = github.repos["acme/fleet"].commit_comments
    (note,) = gitlab_fake.projects[7].commit_comments[NEW]
    for body in (comment["body"], note["note"]):
        assert "`ConfigMap web/settings`" in body
        assert "drift reverted" in body
        assert "Deployment" not in body  # predicted and applied alike: not a difference
    assert comment["commit_id"] == NEW


def test_a_match_says_so_without_a_comment(github: FakeGitHub, on_github: Harness) -> None:
    matched = compare(PLAN, {DEPLOYMENT: Applied.CONFIGURED, CONFIG: Applied.UNCHANGED})
    on_github.reporter.applied(KS, revision(NEW), 3, healthy=False, comparison=matched)
    on_github.settle()
    assert github_statuses(github, NEW) == [
        ("success", CONTEXT, "applied in 3s; applied as previewed")
    ]
    assert github.repos["acme/fleet"].commit_comments == []
    assert on_github.mismatches() == 0


def test_a_revision_that_names_no_commit_sets_nothing(
    github: FakeGitHub, on_github: Harness
) -> None:
    assert not on_github.reporter.applying(KS, "latest")
    assert not on_github.reporter.applied(KS, f"main@sha1:{NEW[:12]}", 1, healthy=True)
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
        assert on_github.reporter.applying(KS, revision(sha))  # returns at once: only queued
    on_github.settle()
    assert on_github.dispatcher.outcome.failed == 3
    assert TOKEN not in caplog.text
    github.fail_next = []
    on_github.reporter.applied(KS, revision(NEW), 2, healthy=True)
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
        harness.reporter.applying(KS, revision(NEW))
        harness.reporter.failed(KS, revision(NEW), "BuildFailed", "kustomize build failed")
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


def test_go_durations() -> None:
    assert [go_duration(s) for s in (0.35, 14.4, 65, 7322)] == ["350ms", "14s", "1m5s", "2h2m2s"]
