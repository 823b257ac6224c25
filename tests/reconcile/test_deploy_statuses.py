"""Deploy statuses from the real pipeline: pending, then the outcome, on each applied commit.

The reconcile runs on the real control plane with the real git server, artifacts and apply; the
reporter is the pipeline's observer and the subscriber in front of the notifier, which posts
through PyGithub to the GitHub API server on loopback (checked against GitHub's OpenAPI
description).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from core.fetch import FetchPolicy
from reconciler.events import EventRecorder
from reconciler.notification.code_hosts import code_hosts
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.lifecycle import DeployReporter, sha_of
from reconciler.notification.service import Notifier
from tests.fixtures.github import NO_WAIT, TOKEN
from tests.notification.objects import alert_obj, provider_obj
from tests.notification.store import MemoryStore
from tests.reconcile.conftest import Flux
from tests.reconcile.driver import Driver
from tests.vcs.github_fake import FakeGitHub

pytestmark = pytest.mark.cluster


@pytest.fixture
def reporting(flux: Flux, github: FakeGitHub) -> Iterator[tuple[Driver, Dispatcher]]:
    """A driver whose pipeline reports to GitHub through a github Provider and Alert."""
    origin = github.base_url.removesuffix("/api/v3")
    store = MemoryStore(
        [
            provider_obj(
                "github",
                {"type": "github", "address": f"{origin}/acme/fleet", "secretRef": {"name": "gh"}},
                namespace=flux.namespace,
            ),
            alert_obj(
                "github",
                {
                    "providerRef": {"name": "github"},
                    "eventSources": [{"kind": "Kustomization", "name": "*"}],
                },
                namespace=flux.namespace,
            ),
        ],
        {(flux.namespace, "gh"): {"token": TOKEN.encode()}},
    )
    policy = FetchPolicy(allowed_hosts=frozenset({origin.removeprefix("http://")}))
    dispatcher = Dispatcher(dataclasses.replace(policy, allow_loopback=True))
    dispatcher.start()
    notifier = Notifier(store, dispatcher, hosts=code_hosts(NO_WAIT))
    reporter = DeployReporter(notifier.notify, cluster="prod")
    deps = dataclasses.replace(
        flux.driver.deps,
        observer=reporter,
        events=EventRecorder(None, [reporter.forward], instance="tidegate-0"),
    )
    yield Driver(flux.kube_client, deps), dispatcher
    dispatcher.stop()


def _app(flux: Flux, colour: str) -> dict[str, str | None]:
    return {
        "app/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: [settings.yaml]
        """,
        "app/settings.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: settings, namespace: {flux.apps_namespace}}}
            data: {{colour: {colour}}}
        """,
    }


def _statuses(github: FakeGitHub, revision: str) -> list[tuple[str, str, str]]:
    sha = sha_of(revision)
    assert sha is not None
    return [
        (s["state"], s["context"], s["description"])
        for s in github.repos["acme/fleet"].statuses.get(sha, [])
    ]


def test_each_commit_gets_pending_then_its_own_outcome(
    flux: Flux, github: FakeGitHub, reporting: tuple[Driver, Dispatcher]
) -> None:
    driver, dispatcher = reporting
    k8s.CoreV1Api(flux.kube_client).create_namespace({"metadata": {"name": flux.apps_namespace}})
    context = "kustomization/app/0c9c2e41"

    first = flux.commit(_app(flux, "blue"), "first")
    flux.kustomization("app", path="./app")
    assert driver.reconcile(flux.namespace, "app").ready
    dispatcher.drain()
    [pending, success] = _statuses(github, first)
    assert pending == ("pending", context, "applying to prod/app")
    assert success[:2] == ("success", context)
    assert success[2].startswith("applied in ")

    broken = flux.commit({"app/kustomization.yaml": "resources: [missing.yaml]\n"}, "broken")
    assert not driver.reconcile(flux.namespace, "app").ready
    fixed = flux.commit(_app(flux, "green"), "fixed")
    assert driver.reconcile(flux.namespace, "app").ready
    dispatcher.drain()

    [pending, failure] = _statuses(github, broken)
    assert pending == ("pending", context, "applying to prod/app")
    assert failure[:2] == ("failure", context)
    assert failure[2].startswith("build failed: ")
    assert [s[0] for s in _statuses(github, fixed)] == ["pending", "success"]
    assert len(_statuses(github, first)) == 2  # untouched by later commits

    # The periodic reconcile of the applied revision posts nothing new.
    assert driver.reconcile(flux.namespace, "app").ready
    dispatcher.drain()
    assert len(_statuses(github, fixed)) == 2
    assert set(github.repos["acme/fleet"].statuses) == {sha_of(r) for r in (first, broken, fixed)}
