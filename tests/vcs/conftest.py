"""Fixtures: a fake GitHub on loopback, reached through PyGithub as in production."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.vcs.github import GitHubAuth, GitHubHost, connect
from core.vcs.retry import RetryPolicy
from tests.vcs.github_fake import FakeGitHub, serve_github

TOKEN = "ghp_operator-token-0123456789"
APP_ID = "4242"
NO_WAIT = RetryPolicy(sleep=lambda _seconds: None)


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """A private key for the GitHub App and its public half (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def github(app_key: tuple[str, str]) -> Iterator[FakeGitHub]:
    """A served fake GitHub; every exchange must match GitHub's OpenAPI description."""
    fake = FakeGitHub(token=TOKEN, app_id=APP_ID, public_key=app_key[1])
    fake.add_pull("acme/fleet", 1, head="a" * 40)
    fake.repos["acme/fleet"].permissions.update({"writer": "write", "reader": "read"})
    with serve_github(fake):
        yield fake
    assert fake.violations == []


@pytest.fixture
def token_host(github: FakeGitHub) -> GitHubHost:
    """The adapter in token mode (commit statuses)."""
    client, _ = connect(github.base_url, GitHubAuth(token=TOKEN))
    return GitHubHost(client, "acme/fleet", checks=False, retry=NO_WAIT)


@pytest.fixture
def app_host(github: FakeGitHub, app_key: tuple[str, str]) -> GitHubHost:
    """The adapter as a GitHub App installation (check runs)."""
    auth = GitHubAuth(app_id=APP_ID, private_key=app_key[0], installation_id=7)
    client, _ = connect(github.base_url, auth)
    return GitHubHost(client, "acme/fleet", checks=True, retry=NO_WAIT)
