"""The private HTTPS and the SSH git servers, driven by the real git and ssh clients.

Aspects: HTTPS needs the test CA; a private server refuses anonymous fetches and accepts Basic
credentials or a bearer token (and refuses a wrong one); SSH needs the authorized key and a
known host key; the SSH key runs nothing but git's services below the root.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.gitserver import (
    GIT_PASSWORD,
    GIT_TOKEN,
    GIT_USER,
    SecureGit,
    commit,
    git,
    git_result,
)


@pytest.fixture
def pushed(secure_git: SecureGit, tmp_path: Path) -> tuple[str, str]:
    """A repository on the secure servers holding one commit; its name and the commit."""
    name = secure_git.create_repo(f"secure-{tmp_path.name}")
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    head = commit(work, {"a.yaml": b"a: 1\n"})
    git("push", "--quiet", str(secure_git.https.root / f"{name}.git"), "main", cwd=work)
    return name, head


def _ca(secure_git: SecureGit, tmp_path: Path) -> dict[str, str]:
    bundle = tmp_path / "ca.crt"
    bundle.write_bytes(secure_git.ca_pem)
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.sslCAInfo",
        "GIT_CONFIG_VALUE_0": str(bundle),
    }


def _header(env: dict[str, str], value: str) -> dict[str, str]:
    return {
        **env,
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_1": "http.extraHeader",
        "GIT_CONFIG_VALUE_1": f"Authorization: {value}",
    }


def test_https_needs_the_test_ca(
    secure_git: SecureGit, pushed: tuple[str, str], tmp_path: Path
) -> None:
    name, _ = pushed
    url = secure_git.https.repo_url(name)
    assert url.startswith("https://127.0.0.1:")
    done = git_result("ls-remote", url)
    assert done.returncode != 0
    assert "certificate" in done.stderr.lower()


def test_a_private_server_refuses_anonymous_fetches(
    secure_git: SecureGit, pushed: tuple[str, str], tmp_path: Path
) -> None:
    name, head = pushed
    done = git_result("ls-remote", secure_git.https.repo_url(name), env=_ca(secure_git, tmp_path))
    assert done.returncode != 0
    assert head not in done.stdout


def test_basic_credentials_and_bearer_tokens_fetch(
    secure_git: SecureGit, pushed: tuple[str, str], tmp_path: Path
) -> None:
    name, head = pushed
    url = secure_git.https.repo_url(name)
    env = _ca(secure_git, tmp_path)
    basic = base64.b64encode(f"{GIT_USER}:{GIT_PASSWORD}".encode()).decode()
    assert head in git("ls-remote", url, "main", env=_header(env, f"Basic {basic}"))
    assert head in git("ls-remote", url, "main", env=_header(env, f"Bearer {GIT_TOKEN}"))
    wrong = git_result("ls-remote", url, env=_header(env, "Bearer not-the-token"))
    assert wrong.returncode != 0


def _ssh_env(secure_git: SecureGit, tmp_path: Path, known_hosts: str) -> dict[str, str]:
    identity = tmp_path / "identity"
    identity.touch(mode=0o600)
    identity.write_bytes(secure_git.ssh.client_key)
    hosts = tmp_path / "known_hosts"
    hosts.write_text(known_hosts)
    return {
        "GIT_SSH_COMMAND": (
            f"ssh -F {os.devnull} -i {identity} -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o UserKnownHostsFile={hosts} -o StrictHostKeyChecking=yes"
        )
    }


def test_ssh_fetches_with_the_key_and_the_known_host(
    secure_git: SecureGit, pushed: tuple[str, str], tmp_path: Path
) -> None:
    name, head = pushed
    env = _ssh_env(secure_git, tmp_path, secure_git.ssh.known_hosts)
    assert head in git("ls-remote", secure_git.ssh.repo_url(name), "main", env=env)


def test_ssh_refuses_an_unknown_host_key(
    secure_git: SecureGit, pushed: tuple[str, str], tmp_path: Path
) -> None:
    name, _ = pushed
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkRYVQ8J7M1i3n1oh0rmwnGB0dZ2R0k6o2rOgvZyX8T"
    env = _ssh_env(secure_git, tmp_path, f"[127.0.0.1]:{secure_git.ssh.port} {other}\n")
    done = git_result("ls-remote", secure_git.ssh.repo_url(name), env=env)
    assert done.returncode != 0
    assert "host key" in done.stderr.lower()


@pytest.mark.parametrize(
    "path", ["/../outside.git", "/a'b.git", "/nonexistent.git"], ids=["dotdot", "quote", "missing"]
)
def test_ssh_serves_nothing_outside_the_root(
    secure_git: SecureGit, pushed: tuple[str, str], tmp_path: Path, path: str
) -> None:
    env = _ssh_env(secure_git, tmp_path, secure_git.ssh.known_hosts)
    url = f"ssh://{secure_git.ssh.user}@127.0.0.1:{secure_git.ssh.port}{path}"
    assert git_result("ls-remote", url, env=env).returncode != 0


def test_the_ssh_key_runs_no_shell(secure_git: SecureGit, tmp_path: Path) -> None:
    ssh = _ssh_env(secure_git, tmp_path, secure_git.ssh.known_hosts)["GIT_SSH_COMMAND"].split()
    target = f"{secure_git.ssh.user}@127.0.0.1"
    done = subprocess.run(
        [*ssh, "-p", str(secure_git.ssh.port), target, "id"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0
    assert "uid=" not in done.stdout
    assert "only serves git fetch and push" in done.stderr
