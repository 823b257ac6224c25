"""The PR app's per-cluster live preview against the real control plane, end to end.

A Kustomization's inventory holds an object that already left Git (the reconciler has not run
since). The pull request changes something else. Reviewed through the app (local GitHub API
server, local git server), the offline review cannot see the object go; with the cluster
configured for a live plan, with the read-and-dry-run identity of docs/preview.md, the comment
shows its prune and lists it as drift, apart from the pull request's own change.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from app.settings import LiveCluster
from core.plan.live import UNMANAGED
from devenv.github_api import FakeGitHub
from tests.app.conftest import ServiceFactory, pull_request_event, service_factory
from tests.app.test_review_github import checks_of
from tests.fixtures.gitserver import git
from tests.reconcile.conftest import Flux
from tests.reconcile.test_live_preview import _files, _head, _preview, preview_identity

pytestmark = pytest.mark.cluster

__all__ = ["preview_identity", "service_factory"]  # fixtures this module uses


def _pull_request(flux: Flux) -> str:
    """Push the pull request (the settings turn green) to `feature`; its head."""
    git("checkout", "--quiet", "-B", "feature", cwd=flux.work)
    settings = _files(flux, colour="green", keep_old=False)["app/settings.yaml"]
    assert settings is not None
    (flux.work / "app/settings.yaml").write_text(textwrap.dedent(settings).lstrip("\n"))
    git("commit", "--quiet", "-am", "the pull request", cwd=flux.work)
    git("push", "--quiet", "--force", flux.repo.push_url, "feature", cwd=flux.work)
    return _head(flux)


def _review(
    service_factory: ServiceFactory,
    github: FakeGitHub,
    flux: Flux,
    head: str,
    number: int,
    **settings: Any,
) -> str:
    service = service_factory(**settings)
    github.add_pull("acme/fleet", number, head=head)
    event = pull_request_event("opened", number=number, head=head, clone_url=flux.repo.url)
    assert service.deliver("pull_request", event).status_code == 202
    assert service.drain() == 1
    bodies = [
        c["body"] for c in github.repos["acme/fleet"].comments.values() if c["issue"] == number
    ]
    assert len(bodies) == 1
    return str(bodies[0])


def test_the_live_review_shows_the_prune_the_offline_review_cannot(
    flux: Flux,
    preview_identity: Path,
    service_factory: ServiceFactory,
    github: FakeGitHub,
) -> None:
    core = k8s.CoreV1Api(flux.kube_client)
    core.create_namespace({"metadata": {"name": flux.apps_namespace}})
    flux.commit(_files(flux, colour="blue", keep_old=True), "first")
    flux.kustomization("app", path="./app")
    assert flux.driver.reconcile(flux.namespace, "app").ready
    inventory = flux.get("app")["status"]["inventory"]["entries"]
    assert f"{flux.apps_namespace}_old__ConfigMap" in [e["id"] for e in inventory]
    # `old` leaves Git on main; the reconciler has not run since, so the cluster still has it.
    flux.commit(_files(flux, colour="blue", keep_old=False), "drop old")
    head = _pull_request(flux)

    old = f"ConfigMap/{flux.apps_namespace}/old"
    offline = _review(service_factory, github, flux, head, 8)
    assert f"ConfigMap/{flux.apps_namespace}/settings" in offline
    assert old not in offline
    assert "Live plan" not in offline

    live_cluster = LiveCluster("clusters/test", preview_identity)
    live = _review(service_factory, github, flux, head, 9, live_clusters=(live_cluster,))
    offline_part, section = live.split("### Live plan of `clusters/test` against the cluster")
    assert old not in offline_part
    # The exact prune set: `old` is deleted, as the cluster's inventory says.
    assert f"- **delete** `{old}`" in section
    drift = f"| `Kustomization/{flux.namespace}/app` | `ConfigMap {flux.apps_namespace}/old` |"
    assert f"{drift} delete | no change |" in section
    # Nothing was written: the old object is still there, the settings still blue.
    assert core.read_namespaced_config_map("old", flux.apps_namespace).data == {"stale": "yes"}


MARKER = "unmanaged-live-only-marker"


def _probing_head(flux: Flux) -> str:
    """A pull request naming objects of kube-system that Flux does not manage; its head."""
    git("checkout", "--quiet", "-B", "probe", cwd=flux.work)
    (flux.work / "app/probe.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: cluster-settings, namespace: kube-system}
            data: {probe: "1"}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: cluster-robot, namespace: kube-system, annotations: {probe: "1"}}
            """
        ).lstrip("\n")
    )
    (flux.work / "app/kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [settings.yaml, old.yaml, probe.yaml]\n"
    )
    settings = _files(flux, colour="green", keep_old=False)["app/settings.yaml"]
    assert settings is not None
    (flux.work / "app/settings.yaml").write_text(textwrap.dedent(settings).lstrip("\n"))
    git("add", "app", cwd=flux.work)
    git("commit", "--quiet", "-m", "the probing pull request", cwd=flux.work)
    git("push", "--quiet", "--force", flux.repo.push_url, "probe", cwd=flux.work)
    return _head(flux)


def test_a_live_review_shows_no_value_of_an_object_flux_does_not_manage(
    flux: Flux,
    preview_identity: Path,
    service_factory: ServiceFactory,
    github: FakeGitHub,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    core = k8s.CoreV1Api(flux.kube_client)
    core.create_namespace({"metadata": {"name": flux.apps_namespace}})
    flux.commit(_files(flux, colour="blue", keep_old=True), "first")
    flux.kustomization("app", path="./app")
    assert flux.driver.reconcile(flux.namespace, "app").ready
    base = _head(flux)
    # Objects of the cluster that no Kustomization of this repository manages, holding values.
    core.create_namespaced_config_map(
        "kube-system",
        {"metadata": {"name": "cluster-settings"}, "data": {"token": f"{MARKER}-configmap"}},
    )
    core.create_namespaced_service_account(
        "kube-system",
        {"metadata": {"name": "cluster-robot", "annotations": {"owner": f"{MARKER}-account"}}},
    )
    head = _probing_head(flux)

    # The attack is real: an operator's plain live preview shows the live values.
    code, report = _preview(flux, preview_identity, base, head, tmp_path, "--live")
    assert code == 1
    assert MARKER in json.dumps(report)

    live_cluster = LiveCluster("clusters/test", preview_identity)
    body = _review(service_factory, github, flux, head, 10, live_clusters=(live_cluster,))
    _, section = body.split("### Live plan of `clusters/test` against the cluster")
    for name in (
        "ConfigMap/kube-system/cluster-settings",
        "ServiceAccount/kube-system/cluster-robot",
    ):
        assert f"`{name}` ({UNMANAGED})" in section
        assert name not in section.split("### Drift")[1]
    # What Flux manages from this repository is still planned live, with its diff.
    assert f"- **update** `ConfigMap/{flux.apps_namespace}/settings`" in section
    assert "colour: green" in section
    published = body + str(checks_of(github, head)) + caplog.text + "".join(capfd.readouterr())
    assert MARKER not in published
    # Nothing was written: the unmanaged objects are as they were.
    assert core.read_namespaced_config_map("cluster-settings", "kube-system").data == {
        "token": f"{MARKER}-configmap"
    }


def test_a_kustomization_the_pull_request_adds_shows_no_inventory_of_the_cluster(
    flux: Flux,
    preview_identity: Path,
    service_factory: ServiceFactory,
    github: FakeGitHub,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The cluster runs a Kustomization `other` the base revision does not have (as one another
    # repository drives would be); its inventory holds an object with a marker value.
    core = k8s.CoreV1Api(flux.kube_client)
    core.create_namespace({"metadata": {"name": flux.apps_namespace}})
    files = _files(flux, colour="blue", keep_old=True)
    files["other/kustomization.yaml"] = "resources: [kept.yaml]\n"
    files["other/kept.yaml"] = f"""
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: kept, namespace: {flux.apps_namespace}}}
        data: {{token: {MARKER}-inventory}}
    """
    flux.commit(files, "first")
    flux.kustomization("app", path="./app")
    flux.kustomization("other", path="./other")
    assert flux.driver.reconcile(flux.namespace, "app").ready
    assert flux.driver.reconcile(flux.namespace, "other").ready
    base = _head(flux)
    # The pull request adds a Kustomization of that name, with nothing of the other's.
    git("checkout", "--quiet", "-B", "claim", cwd=flux.work)
    (flux.work / "probe").mkdir()
    (flux.work / "probe/kustomization.yaml").write_text("resources: [probe.yaml]\n")
    (flux.work / "probe/probe.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\n"
        f"metadata: {{name: probe, namespace: {flux.apps_namespace}}}\n"
    )
    (flux.work / "clusters/test/other.yaml").write_text(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
        f"metadata: {{name: other, namespace: {flux.namespace}}}\n"
        "spec: {interval: 10m, path: ./probe, prune: true,"
        " sourceRef: {kind: GitRepository, name: flux-system}}\n"
    )
    git("add", "probe", "clusters", cwd=flux.work)
    git("commit", "--quiet", "-m", "claim other", cwd=flux.work)
    git("push", "--quiet", "--force", flux.repo.push_url, "claim", cwd=flux.work)
    head = _head(flux)

    # The attack is real: an operator's plain live preview shows the inventory's object go.
    _, report = _preview(flux, preview_identity, base, head, tmp_path, "--live")
    assert MARKER in json.dumps(report)

    live_cluster = LiveCluster("clusters/test", preview_identity)
    body = _review(service_factory, github, flux, head, 11, live_clusters=(live_cluster,))
    _, section = body.split("### Live plan of `clusters/test` against the cluster")
    assert f"- **create** `ConfigMap/{flux.apps_namespace}/probe`" in section
    assert f"ConfigMap/{flux.apps_namespace}/kept" not in section
    published = body + str(checks_of(github, head)) + caplog.text + "".join(capfd.readouterr())
    assert MARKER not in published
