"""GitHub App installation tokens against the local GitHub API server: one token request for
many jobs of one installation, renewal before expiry, renewal after a 401, and the service's
host factory sharing one cache across jobs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.hosts import code_hosts
from app.metrics import AppMetrics
from app.settings import Settings
from app.store import Job
from core.vcs.github import GitHubAuth, GitHubHost, connect
from core.vcs.github_tokens import InstallationTokens
from core.vcs.port import VcsError
from core.vcs.webhooks import Provider, Work, WorkKind
from devenv.github_api import FakeGitHub
from tests.fixtures.github import APP_ID, NO_WAIT

MINT = ("POST", "/app/installations/7/access_tokens")


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


def host_for(github: FakeGitHub, tokens: InstallationTokens) -> GitHubHost:
    auth = GitHubAuth(app_id=APP_ID, private_key="unused", installation_id=7)
    client, credentials = connect(github.base_url, auth, tokens=tokens)
    return GitHubHost(client, "acme/fleet", checks=True, retry=NO_WAIT, credentials=credentials)


def test_many_jobs_of_one_installation_make_one_token_request(
    github: FakeGitHub, app_key: tuple[str, str], tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        github_url=github.base_url,
        github_app_id=APP_ID,
        github_private_key=app_key[0],
    )
    hosts = code_hosts(settings, AppMetrics(), retry=NO_WAIT)
    for number in range(1, 6):
        work = Work(WorkKind.REVIEW, "acme/fleet", 1, head_sha="a" * 40, installation_id=7)
        host, credentials = hosts(Job(number, Provider.GITHUB, work, 1))
        host.create_comment(1, f"review {number}")
        assert credentials.password in github.installation_tokens
    assert github.requests.count(MINT) == 1
    assert len(github.comment_bodies("acme/fleet")) == 5


def test_a_token_near_its_expiry_is_renewed(github: FakeGitHub, app_key: tuple[str, str]) -> None:
    clock = Clock()
    tokens = InstallationTokens(github.base_url, APP_ID, app_key[0], margin=300, clock=clock)
    host = host_for(github, tokens)
    host.create_comment(1, "first")
    first = tokens.token(7)
    clock.ahead = 3600 - 299  # GitHub's tokens last an hour: this one is within the margin
    second = tokens.token(7)
    assert second != first
    assert github.requests.count(MINT) == 2
    clock.ahead = 0
    host.create_comment(1, "second")  # with the renewed token, which is fresh
    assert github.requests.count(MINT) == 2
    assert tokens.token(7) == second


def test_a_token_well_before_its_expiry_is_kept(
    github: FakeGitHub, app_key: tuple[str, str]
) -> None:
    clock = Clock()
    tokens = InstallationTokens(github.base_url, APP_ID, app_key[0], margin=300, clock=clock)
    host = host_for(github, tokens)
    host.create_comment(1, "first")
    clock.ahead = 3600 - 301 - 60  # a minute of slack for the test's own run time
    host.create_comment(1, "second")
    assert github.requests.count(MINT) == 1


def test_a_refused_token_is_renewed_and_the_call_repeated(
    github: FakeGitHub, app_key: tuple[str, str]
) -> None:
    tokens = InstallationTokens(github.base_url, APP_ID, app_key[0])
    host = host_for(github, tokens)
    host.create_comment(1, "first")
    github.installation_tokens.clear()  # GitHub revoked it
    host.create_comment(1, "second")
    assert github.requests.count(MINT) == 2
    assert github.comment_bodies("acme/fleet") == ["first", "second"]


def test_a_401_without_app_credentials_is_an_error(github: FakeGitHub) -> None:
    client, _ = connect(github.base_url, GitHubAuth(token="ghp_wrong"))
    host = GitHubHost(client, "acme/fleet", checks=False, retry=NO_WAIT)
    with pytest.raises(VcsError, match="HTTP 401"):
        host.create_comment(1, "nope")


def test_an_installation_github_refuses_is_a_clear_error(
    github: FakeGitHub, app_key: tuple[str, str]
) -> None:
    tokens = InstallationTokens(github.base_url, APP_ID, app_key[0])
    with pytest.raises(VcsError, match="installation 8: HTTP 404"):
        tokens.token(8)
    assert "ghs_" not in repr(tokens)
