"""Deploy statuses from the real pipeline: pending, then the outcome, on each applied commit.

The reconcile runs on the real control plane with the real git server, artifacts and apply; the
reporter is the pipeline's observer and the subscriber in front of the notifier, which posts
through PyGithub to the GitHub API server on loopback (checked against GitHub's OpenAPI
description).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from prometheus_client import CollectorRegistry

from core.fetch import FetchPolicy
from core.render.cache import RenderCache
from core.render.engine import RenderEngine
from core.render.unit import RenderOptions
from devenv.github_api import FakeGitHub
from reconciler.events import EventRecorder
from reconciler.notification.code_hosts import code_hosts
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.lifecycle import DeployReporter, Predictor, Recorder, sha_of
from reconciler.notification.predictor import ArtifactPredictor, RepositoryPredictor
from reconciler.notification.revisions import RevisionStore
from reconciler.notification.service import Notifier
from tests.fixtures.github import APP_ID, NO_WAIT, TOKEN
from tests.notification.objects import alert_obj, provider_obj
from tests.notification.store import MemoryStore
from tests.reconcile.conftest import Flux
from tests.reconcile.driver import Driver

pytestmark = pytest.mark.cluster


def _reporting(
    flux: Flux,
    github: FakeGitHub,
    predictor: Predictor | None = None,
    registry: CollectorRegistry | None = None,
    recorder: Recorder | None = None,
    app_key: str = "",
) -> tuple[Driver, Dispatcher, DeployReporter]:
    """A driver whose pipeline reports to GitHub through a github Provider and Alert.

    The Provider's Secret holds a token, or with `app_key` a GitHub App installation.
    """
    secret = {"token": TOKEN.encode()}
    if app_key:
        secret = {
            "githubAppID": APP_ID.encode(),
            "githubAppInstallationID": b"7",
            "githubAppPrivateKey": app_key.encode(),
        }
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
        {(flux.namespace, "gh"): secret},
    )
    policy = FetchPolicy(allowed_hosts=frozenset({origin.removeprefix("http://")}))
    dispatcher = Dispatcher(dataclasses.replace(policy, allow_loopback=True))
    dispatcher.start()
    notifier = Notifier(store, dispatcher, hosts=code_hosts(NO_WAIT))
    reporter = DeployReporter(
        notifier.notify, cluster="prod", predictor=predictor, recorder=recorder, registry=registry
    )
    deps = dataclasses.replace(
        flux.driver.deps,
        observer=reporter,
        events=EventRecorder(None, [reporter.forward], instance="tidegate-0"),
    )
    return Driver(flux.kube_client, deps), dispatcher, reporter


@pytest.fixture
def reporting(flux: Flux, github: FakeGitHub) -> Iterator[tuple[Driver, Dispatcher]]:
    driver, dispatcher, _ = _reporting(flux, github)
    yield driver, dispatcher
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


def _fleet_files(flux: Flux, colour: str, size: str) -> dict[str, str | None]:
    """The app behind a cluster entry point, as a repository the preview can read."""
    return {
        "clusters/prod/flux-system/gotk-sync.yaml": f"""
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: GitRepository
            metadata: {{name: flux-system, namespace: {flux.namespace}}}
            spec: {{interval: 1m, url: {flux.repo.url}, ref: {{branch: main}}}}
            ---
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: flux-system, namespace: {flux.namespace}}}
            spec:
              interval: 10m
              path: ./clusters/prod
              prune: true
              sourceRef: {{kind: GitRepository, name: flux-system}}
        """,
        "clusters/prod/app.yaml": f"""
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: app, namespace: {flux.namespace}}}
            spec:
              interval: 10m
              path: ./app
              prune: true
              sourceRef: {{kind: GitRepository, name: flux-system}}
        """,
        "app/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: [settings.yaml, limits.yaml]
        """,
        "app/settings.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: settings, namespace: {flux.apps_namespace}}}
            data: {{colour: {colour}}}
        """,
        "app/limits.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: limits, namespace: {flux.apps_namespace}}}
            data: {{size: {size}}}
        """,
    }


@pytest.mark.parametrize("trees", ["artifacts", "repository"])
def test_predicted_vs_applied_names_a_reverted_drift_and_says_when_it_matched(
    flux: Flux,
    github: FakeGitHub,
    kustomize_bin: Path,
    helm_bin: Path,
    tmp_path: Path,
    trees: str,
) -> None:
    """From the artifacts the controller kept (production), or from a clone of the source."""
    render = RenderEngine(RenderOptions(kustomize_bin, helm_bin), RenderCache(tmp_path / "cache"))
    predictor: ArtifactPredictor | RepositoryPredictor
    if trees == "artifacts":
        store = RevisionStore(tmp_path / "revisions")
        predictor = ArtifactPredictor(store, render)
        recorder: Recorder | None = predictor
    else:
        predictor, recorder = RepositoryPredictor(flux.work, "clusters/prod", render), None
    registry = CollectorRegistry()
    driver, dispatcher, reporter = _reporting(flux, github, predictor, registry, recorder)
    try:
        core = k8s.CoreV1Api(flux.kube_client)
        core.create_namespace({"metadata": {"name": flux.apps_namespace}})
        flux.commit(_fleet_files(flux, "blue", "small"), "first")
        flux.kustomization("app", path="./app")
        assert driver.reconcile(flux.namespace, "app").ready

        # The next commit changes `settings` only, and the cluster is as Git says: a match.
        second = flux.commit(_fleet_files(flux, "green", "small"), "second")
        assert driver.reconcile(flux.namespace, "app").ready
        # Someone edits `limits` by hand; the third commit again changes `settings` only.
        core.patch_namespaced_config_map(
            "limits", flux.apps_namespace, {"data": {"size": "edited by hand"}}
        )
        third = flux.commit(_fleet_files(flux, "red", "small"), "third")
        assert driver.reconcile(flux.namespace, "app").ready
        reporter.drain()  # the statuses held back for their previews
        dispatcher.drain()
    finally:
        reporter.close()
        dispatcher.stop()

    assert _statuses(github, second)[-1][2].endswith("; applied as previewed")
    assert _statuses(github, third)[-1][2].endswith("; applied with 1 difference")
    comments = github.repos["acme/fleet"].commit_comments
    assert [c["commit_id"] for c in comments] == [sha_of(third)]
    body = comments[0]["body"]
    assert f"`ConfigMap {flux.apps_namespace}/limits`" in body
    assert "drift reverted" in body
    assert "settings" not in body.split("| Meaning |")[1]
    assert core.read_namespaced_config_map("limits", flux.apps_namespace).data == {"size": "small"}
    labels = {"namespace": flux.namespace, "name": "app"}
    assert registry.get_sample_value("tidegate_predicted_mismatch_total", labels) == 1


def test_with_a_github_app_the_details_go_to_the_check_run_of_the_flux_context(
    flux: Flux,
    github: FakeGitHub,
    app_key: tuple[str, str],
    kustomize_bin: Path,
    helm_bin: Path,
    tmp_path: Path,
) -> None:
    render = RenderEngine(RenderOptions(kustomize_bin, helm_bin), RenderCache(tmp_path / "cache"))
    predictor = ArtifactPredictor(RevisionStore(tmp_path / "revisions"), render)
    driver, dispatcher, reporter = _reporting(
        flux, github, predictor, recorder=predictor, app_key=app_key[0]
    )
    try:
        core = k8s.CoreV1Api(flux.kube_client)
        core.create_namespace({"metadata": {"name": flux.apps_namespace}})
        flux.commit(_fleet_files(flux, "blue", "small"), "first")
        flux.kustomization("app", path="./app")
        assert driver.reconcile(flux.namespace, "app").ready
        second = flux.commit(_fleet_files(flux, "green", "small"), "second")
        assert driver.reconcile(flux.namespace, "app").ready
        core.patch_namespaced_config_map(
            "limits", flux.apps_namespace, {"data": {"size": "edited by hand"}}
        )
        third = flux.commit(_fleet_files(flux, "red", "small"), "third")
        assert driver.reconcile(flux.namespace, "app").ready
        reporter.drain()  # the statuses held back for their previews
        dispatcher.drain()
    finally:
        reporter.close()
        dispatcher.stop()

    repo = github.repos["acme/fleet"]
    runs = {
        sha: [r for r in repo.check_runs.values() if r["head_sha"] == sha_of(sha)]
        for sha in (second, third)
    }
    # One run per commit under Flux's context, pending then completed in place.
    for revision in (second, third):
        [run] = runs[revision]
        assert run["name"] == "kustomization/app/0c9c2e41"
        assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert runs[second][0]["output"]["title"].endswith("; applied as previewed")
    assert runs[second][0]["output"]["text"] == ""
    output = runs[third][0]["output"]
    assert output["title"].endswith("; applied with 1 difference")
    assert f"`ConfigMap {flux.apps_namespace}/limits`" in output["text"]
    assert "drift reverted" in output["text"]
    # No commit statuses and no commit comments: the App reports through check runs only.
    assert repo.commit_comments == []
    assert repo.statuses == {}
    assert ("POST", "/app/installations/7/access_tokens") in github.requests
