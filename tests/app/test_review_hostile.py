"""Hostile pull requests: the check fails with the reason; no host file or key leaks out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devenv.github_api import FakeGitHub
from tests.app.conftest import Service, pull_request_event
from tests.app.test_review_github import fleet
from tests.fixtures.gitserver import RemoteRepo
from tests.preview.gitrepo import commit, git


def hostile_push(work: Path, remote: RemoteRepo, files: dict[str, str]) -> str:
    git(work, "checkout", "--quiet", "-B", "feature")
    sha = commit(work, files, "hostile")
    git(work, "push", "--quiet", "--force", remote.push_url, "feature")
    return sha


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            {"apps/kustomization.yaml": "resources: [settings.yaml, /etc/passwd]\n"},
            "absolute path '/etc/passwd' is not allowed",
        ),
        (
            {
                "apps/kustomization.yaml": "resources:\n- settings.yaml\n"
                "- http://169.254.169.254/latest/meta-data/\n"
            },
            "169.254.169.254",
        ),
    ],
    ids=["host-file", "ssrf"],
)
def test_hostile_content_fails_the_check_and_leaks_nothing(
    tmp_path: Path,
    service: Service,
    github: FakeGitHub,
    git_remote: RemoteRepo,
    app_key: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    files: dict[str, str],
    reason: str,
) -> None:
    work = fleet(tmp_path, git_remote)
    sha = hostile_push(work, git_remote, files)
    github.add_pull("acme/fleet", 9, head=sha)
    service.deliver(
        "pull_request", pull_request_event("opened", number=9, head=sha, clone_url=git_remote.url)
    )
    service.drain()
    [check] = [r for r in github.repos["acme/fleet"].check_runs.values() if r["head_sha"] == sha]
    assert check["conclusion"] == "failure"
    assert "cannot be proven safe" in check["output"]["title"]
    [body] = github.comment_bodies("acme/fleet")
    assert reason in body
    published = body + str(check["output"]) + caplog.text
    assert "root:x:0:0" not in published
    key_line = app_key[0].splitlines()[1]
    assert key_line not in published


def test_the_preview_process_sees_none_of_the_services_secrets(
    service: Service, app_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service's secrets may sit in its own environment; the child's is built from scratch.
    from core.host.command import Limits, run

    monkeypatch.setenv("TIDEGATE_GITHUB_PRIVATE_KEY", app_key[0])
    child = run(["env"], limits=Limits(env={"PYTHONPATH": "x"})).decode()
    assert "TIDEGATE_GITHUB_PRIVATE_KEY" not in child
    assert app_key[0].splitlines()[1] not in child
    assert os.environ["TIDEGATE_GITHUB_PRIVATE_KEY"] == app_key[0]
