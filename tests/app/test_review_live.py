"""The review's per-cluster live plans: configured by the operator, failing closed, secret-safe.

The cluster here cannot be reached (a kubeconfig pointing at a closed loopback port, holding a
bearer token): the review must fail for that cluster with a message naming it, never fall back to
the offline plan, and never show the token or the kubeconfig's path. The renderers must not read
the kubeconfig even when a pull request asks them to by its absolute path and the repository
walk's own refusals are off (the sandbox alone holds). The end-to-end run against a real control
plane is tests/reconcile/test_app_live_preview.py.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from app import settings as app_settings
from app.engine import PreviewEngine
from app.settings import LiveCluster
from cli import preview_server
from core.errors import InputError
from core.render import walk
from devenv.github_api import FakeGitHub
from devenv.ports import refusing_port
from tests.app.conftest import ServiceFactory, pull_request_event
from tests.app.test_review_github import checks_of, fleet, push_change
from tests.fixtures.gitserver import RemoteRepo
from tests.preview.gitrepo import commit, git

TOKEN = "kube-token-6f1d2c0b9a8e"


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig with a bearer token, for an API server that is not there."""
    with refusing_port() as port:
        yield _kubeconfig(tmp_path, port)


def _kubeconfig(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "operator" / "production.kubeconfig"
    path.parent.mkdir()
    path.write_text(
        textwrap.dedent(f"""
            apiVersion: v1
            kind: Config
            clusters: [{{name: prod, cluster: {{server: "https://127.0.0.1:{port}",
                         insecure-skip-tls-verify: true}}}}]
            users: [{{name: reviewer, user: {{token: {TOKEN}}}}}]
            contexts: [{{name: prod, context: {{cluster: prod, user: reviewer}}}}]
            current-context: prod
        """)
    )
    return path


class InProcessEngine(PreviewEngine):
    """The preview process's own handler, run in the test process (so a test may switch the
    repository walk's refusals off and leave the sandbox alone in the way)."""

    def __init__(self) -> None:
        super().__init__()
        self._parser = preview_server._parser()
        self.calls: list[list[str]] = []

    def preview(self, argv: Sequence[str]) -> tuple[int, str]:
        self.calls.append(list(argv))
        return preview_server.handle(self._parser, argv)


def test_live_clusters_come_from_the_operators_setting(kubeconfig: Path) -> None:
    env = {
        "TIDEGATE_DATA_DIR": "/srv/tidegate",
        "TIDEGATE_LIVE_CLUSTERS": f"clusters/production={kubeconfig}#prod,"
        f" clusters/eu/={kubeconfig}",
    }
    settings = app_settings.from_environment(env)
    assert settings.live_clusters == (
        LiveCluster("clusters/production", kubeconfig, "prod"),
        LiveCluster("clusters/eu", kubeconfig, ""),
    )
    assert str(kubeconfig) not in repr(settings)
    assert app_settings.from_environment({"TIDEGATE_DATA_DIR": "/srv"}).live_clusters == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("clusters/production", "is not clusters/NAME=KUBECONFIG[#CONTEXT]"),
        ("../clusters=/k", "is not clusters/NAME=KUBECONFIG[#CONTEXT]"),
        ("clusters/a=relative/kubeconfig", "the kubeconfig of clusters/a must be an absolute path"),
        ("clusters/a=/nonexistent/kubeconfig", "cannot read the kubeconfig of clusters/a"),
    ],
)
def test_a_bad_live_cluster_entry_is_refused_naming_the_setting(entry: str, message: str) -> None:
    with pytest.raises(InputError, match="--live-cluster: .*" + message.replace("[", r"\[")):
        app_settings.live_clusters([entry], setting="--live-cluster")


def test_a_cluster_given_twice_is_refused(kubeconfig: Path) -> None:
    entry = f"clusters/a={kubeconfig}"
    with pytest.raises(
        InputError, match="TIDEGATE_LIVE_CLUSTERS: cluster clusters/a is given twice"
    ):
        app_settings.live_clusters([entry, entry], setting="TIDEGATE_LIVE_CLUSTERS")


def test_an_unreadable_cluster_fails_the_review_closed_and_shows_no_secret(
    tmp_path: Path,
    service_factory: ServiceFactory,
    github: FakeGitHub,
    git_remote: RemoteRepo,
    kubeconfig: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = InProcessEngine()
    service = service_factory(
        engine=engine,
        live_clusters=(
            LiveCluster("clusters/production", kubeconfig),
            LiveCluster("clusters/gone", kubeconfig),  # not in the repository: not planned
        ),
    )
    work = fleet(tmp_path, git_remote)
    sha = push_change(work, git_remote, "      mode: green")
    github.add_pull("acme/fleet", 5, head=sha)
    event = pull_request_event("opened", number=5, head=sha, clone_url=git_remote.url)
    with caplog.at_level(logging.DEBUG):
        assert service.deliver("pull_request", event).status_code == 202
        assert service.drain() == 1

    [check] = checks_of(github, sha)
    assert check["conclusion"] == "failure"
    title = check["output"]["title"]  # type: ignore[index]
    assert title == "Live preview failed for clusters/production: the change cannot be proven safe"
    [body] = github.comment_bodies("acme/fleet")
    # The offline preview is still there, and the cluster's section says why it has no plan.
    assert "ConfigMap" in body
    assert "### Live plan of `clusters/production` against the cluster" in body
    assert "The cluster could not be planned" in body
    assert "clusters/gone" not in body
    lives = [call for call in engine.calls if "--live" in call]
    assert [call[call.index("--path") + 1] for call in lives] == ["clusters/production"]
    published = body + str(check) + caplog.text
    assert TOKEN not in published
    assert str(kubeconfig) not in published


def test_the_renderers_cannot_read_the_kubeconfig(
    tmp_path: Path,
    service_factory: ServiceFactory,
    github: FakeGitHub,
    git_remote: RemoteRepo,
    kubeconfig: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The repository walk refuses absolute paths itself; switched off, the sandbox alone holds.
    monkeypatch.setattr(walk, "_REFUSE", False)
    service = service_factory(
        engine=InProcessEngine(),
        live_clusters=(LiveCluster("clusters/production", kubeconfig),),
    )
    work = fleet(tmp_path, git_remote)
    git(work, "checkout", "--quiet", "-B", "feature")
    generator = f"configMapGenerator:\n- name: stolen\n  files: [{kubeconfig}]\n"
    sha = commit(work, {"apps/kustomization.yaml": "resources: [settings.yaml]\n" + generator}, "x")
    git(work, "push", "--quiet", "--force", git_remote.push_url, "feature")
    github.add_pull("acme/fleet", 7, head=sha)
    event = pull_request_event("opened", number=7, head=sha, clone_url=git_remote.url)
    with caplog.at_level(logging.DEBUG):
        assert service.deliver("pull_request", event).status_code == 202
        assert service.drain() == 1

    [check] = checks_of(github, sha)
    assert check["conclusion"] == "failure"
    [body] = github.comment_bodies("acme/fleet")
    assert "denied by the sandbox" in body
    published = body + str(check) + caplog.text
    assert TOKEN not in published
