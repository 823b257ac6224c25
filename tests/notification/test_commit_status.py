"""Commit statuses: Flux's selection, commit, state, name and description; GitHub by adapter.

GitLab, pending statuses and duplicate skipping are covered end to end in test_deploy_status."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core.errors import InputError
from core.fetch import FetchPolicy
from core.vcs.port import ReportState
from devenv.github_api import FakeGitHub
from reconciler.notification.code_hosts import code_host
from reconciler.notification.commit_status import (
    commit_of,
    description_of,
    repository_of,
    status_for,
)
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.objects import parse_alert, parse_provider
from reconciler.notification.service import Notifier
from tests.fixtures.github import TOKEN
from tests.notification.objects import alert_obj, ks_event, provider_obj
from tests.notification.store import MemoryStore

SHA = "0123456789abcdef0123456789abcdef01234567"
ALERT = parse_alert(
    alert_obj(
        "status",
        {"providerRef": {"name": "gh"}, "eventSources": [{"kind": "Kustomization", "name": "*"}]},
    )
)


def provider(**spec: Any) -> Any:
    return parse_provider(
        provider_obj("gh", {"type": "github", "address": "https://github.com/acme/fleet", **spec})
    )


def success(**metadata: str) -> Any:
    return ks_event(
        metadata={"revision": f"main@sha1:{SHA}", "commit_status": "update", **metadata}
    )


def test_only_status_updates_commits_and_errors_set_a_status() -> None:
    assert (
        status_for(provider(), ALERT, ks_event(metadata={"revision": f"main@sha1:{SHA}"})) is None
    )
    assert (
        status_for(
            provider(),
            ALERT,
            success(),
        )
        is not None
    )
    error = ks_event(
        severity="error", reason="HealthCheckFailed", metadata={"revision": f"main@sha1:{SHA}"}
    )
    found = status_for(provider(), ALERT, error)
    assert found is not None
    assert (found[1].state, found[1].title) == (ReportState.FAILURE, "health check failed")
    progressing = ks_event(severity="error", reason="Progressing", metadata={"revision": SHA})
    assert status_for(provider(), ALERT, progressing) is None


def test_default_name_state_and_description() -> None:
    found = status_for(provider(), ALERT, success())
    assert found is not None
    sha, report = found
    assert sha == SHA
    assert report.name == "kustomization/apps/0c9c2e41"
    assert (report.state, report.title) == (ReportState.SUCCESS, "reconciliation succeeded")


def test_commit_status_expr_is_evaluated_with_cel() -> None:
    expr = (
        "event.involvedObject.kind + '/' + event.involvedObject.name + '@' + provider.metadata.name"
    )
    found = status_for(provider(commitStatusExpr=expr), ALERT, success())
    assert found is not None
    assert found[1].name == "Kustomization/apps@gh"
    with pytest.raises(InputError) as caught:
        status_for(provider(commitStatusExpr="event.nothing.here"), ALERT, success())
    assert caught.value.field == "spec.commitStatusExpr"


def test_commit_is_taken_from_commit_then_origin_revision_then_revision() -> None:
    other = "f" * 40
    assert commit_of(ks_event(metadata={"revision": f"main/{SHA}"}), provider()) == SHA
    event = ks_event(
        metadata={"revision": f"main@sha1:{SHA}", "originRevision": f"v1@sha1:{other}"}
    )
    assert commit_of(event, provider()) == other
    assert commit_of(ks_event(metadata={"commit": SHA, "revision": "x"}), provider()) == SHA
    with pytest.raises(InputError, match="failed to extract commit hash from 'latest' revision"):
        commit_of(ks_event(metadata={"revision": "latest"}), provider())


def test_description_splits_camel_case() -> None:
    assert description_of("BuildFailed") == "build failed"
    assert description_of("ReconciliationSucceeded") == "reconciliation succeeded"


def test_repository_from_https_ssh_and_enterprise_addresses() -> None:
    open_policy = FetchPolicy(allowed_hosts=None)
    gh = provider()
    assert repository_of(gh, "https://github.com/acme/fleet.git", open_policy).api_url == (
        "https://api.github.com"
    )
    ssh = repository_of(gh, "git@github.com:acme/fleet.git", open_policy)
    assert (ssh.api_url, ssh.path) == ("https://api.github.com", "acme/fleet")
    enterprise = repository_of(gh, "ssh://git@ghe.example.com/acme/fleet", open_policy)
    assert enterprise.api_url == "https://ghe.example.com/api/v3"
    with pytest.raises(InputError, match="refused") as caught:
        repository_of(gh, "https://github.com/acme/fleet", FetchPolicy(allowed_hosts=frozenset()))
    assert caught.value.field == "spec.address"


def test_github_status_is_set_through_the_adapter(
    github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    origin = github.base_url.removesuffix("/api/v3")
    store = MemoryStore(
        [
            provider_obj(
                "gh",
                {"type": "github", "address": f"{origin}/acme/fleet", "secretRef": {"name": "gh"}},
            ),
            alert_obj(
                "gh",
                {
                    "providerRef": {"name": "gh"},
                    "eventSources": [{"kind": "Kustomization", "name": "*"}],
                },
            ),
        ],
        {("flux-system", "gh"): {"token": TOKEN.encode()}},
    )
    host = origin.removeprefix("http://")
    dispatcher = Dispatcher(FetchPolicy(allowed_hosts=frozenset({host}), allow_loopback=True))
    dispatcher.start()
    notifier = Notifier(store, dispatcher, hosts=code_host)
    prefixed = {f"kustomize.toolkit.fluxcd.io/{k}": v for k, v in success().metadata.items()}
    assert notifier.notify(ks_event(metadata=prefixed)) == 1
    assert notifier.notify(ks_event(metadata={"kustomize.toolkit.fluxcd.io/revision": SHA})) == 0
    dispatcher.drain()
    dispatcher.stop()
    (status,) = github.repos["acme/fleet"].statuses[SHA]
    assert (status["state"], status["context"], status["description"]) == (
        "success",
        "kustomization/apps/0c9c2e41",
        "reconciliation succeeded",
    )
    assert (dispatcher.outcome.sent, dispatcher.outcome.failed) == (1, 0)
    assert TOKEN not in caplog.text
