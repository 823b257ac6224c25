"""Fetching GitRepositories from real git servers: HTTPS (Basic, bearer, CA), SSH (known hosts,
passphrase keys), every ref kind, incremental fetches, failures with Flux's reasons and messages
free of credentials."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from devenv.gitserver import GitServer
from devenv.sshgit import new_key
from reconciler.source.auth import GitCredentials
from reconciler.source.checkout import FetchError, GitFetcher
from reconciler.source.refs import GitReference
from tests.fetch.servers import serve
from tests.fixtures.gitserver import (
    GIT_PASSWORD,
    GIT_TOKEN,
    GIT_USER,
    RemoteRepo,
    SecureGit,
    git_result,
)
from tests.gitsource.conftest import Fleet, commit, git

TIMEOUT = 60.0


@pytest.fixture
def basic(secure_git: SecureGit) -> GitCredentials:
    return GitCredentials(username=GIT_USER, password=GIT_PASSWORD, ca=secure_git.ca_pem)


def _ref(**fields: str) -> GitReference:
    return GitReference.from_spec(fields, "GitRepository ns/fleet")


def test_every_ref_kind_resolves_to_fluxs_revision(
    fleet: Fleet, secure_git: SecureGit, basic: GitCredentials, tmp_path: Path
) -> None:
    fetcher = GitFetcher(tmp_path / "cache")
    url = secure_git.https.repo_url(fleet.name)
    cases = [
        ({}, fleet.master, f"master@sha1:{fleet.master}"),
        ({"branch": "main"}, fleet.main, f"main@sha1:{fleet.main}"),
        ({"branch": "release"}, fleet.release, f"release@sha1:{fleet.release}"),
        ({"tag": "v1.0.0"}, fleet.first, f"v1.0.0@sha1:{fleet.first}"),
        # An annotated tag resolves to the commit it points at.
        ({"tag": "v1.1.0"}, fleet.main, f"v1.1.0@sha1:{fleet.main}"),
        ({"semver": ">=1.0.0"}, fleet.main, f"v1.1.0@sha1:{fleet.main}"),
        ({"semver": "~1.0"}, fleet.first, f"v1.0.0@sha1:{fleet.first}"),
        ({"semver": ">=2.0.0-rc.0"}, fleet.release, f"v2.0.0-rc.1@sha1:{fleet.release}"),
        ({"name": "refs/pull/1/head"}, fleet.release, f"refs/pull/1/head@sha1:{fleet.release}"),
        ({"name": "refs/heads/main"}, fleet.main, f"refs/heads/main@sha1:{fleet.main}"),
        ({"commit": fleet.first}, fleet.first, f"sha1:{fleet.first}"),
        ({"branch": "main", "commit": fleet.first}, fleet.first, f"main@sha1:{fleet.first}"),
    ]
    for fields, commit_id, expected in cases:
        got = fetcher.fetch("ns", "fleet", url, _ref(**fields), basic, timeout=TIMEOUT)
        assert (got.commit, got.revision) == (commit_id, expected), fields
        # Depth 1: the commit's parents were not fetched.
        assert git("rev-list", "--count", got.commit, cwd=got.repository) == "1"


def test_fetches_are_incremental_into_the_objects_own_cache(
    fleet: Fleet, secure_git: SecureGit, basic: GitCredentials, tmp_path: Path
) -> None:
    fetcher = GitFetcher(tmp_path / "cache")
    url = secure_git.https.repo_url(fleet.name)
    first = fetcher.fetch("ns", "fleet", url, _ref(branch="main"), basic, timeout=TIMEOUT)
    newer = fleet.push({"deploy/more.yaml": b"kind: Service\n"})
    second = fetcher.fetch("ns", "fleet", url, _ref(branch="main"), basic, timeout=TIMEOUT)
    assert second.repository == first.repository
    assert second.revision == f"main@sha1:{newer}"
    other = fetcher.fetch("ns", "other", url, _ref(branch="main"), basic, timeout=TIMEOUT)
    assert other.repository != first.repository
    assert not (tmp_path / "cache" / "ns").exists()  # object names never become paths


def test_a_bearer_token_authenticates(fleet: Fleet, secure_git: SecureGit, tmp_path: Path) -> None:
    token = GitCredentials(bearer_token=GIT_TOKEN, ca=secure_git.ca_pem)
    got = GitFetcher(tmp_path / "c").fetch(
        "ns", "fleet", secure_git.https.repo_url(fleet.name), _ref(branch="main"), token,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert got.commit == fleet.main


def test_wrong_credentials_fail_with_authentication_failed_and_no_secret(
    fleet: Fleet, secure_git: SecureGit, tmp_path: Path
) -> None:
    wrong = GitCredentials(username=GIT_USER, password="WrongPass-92a7", ca=secure_git.ca_pem)
    url = secure_git.https.repo_url(fleet.name)
    with pytest.raises(FetchError) as caught:
        GitFetcher(tmp_path / "c").fetch("ns", "fleet", url, _ref(), wrong, timeout=TIMEOUT)
    message = str(caught.value)
    assert caught.value.reason == "AuthenticationFailed"
    assert message.startswith(f"failed to checkout and determine revision: unable to clone '{url}'")
    assert "WrongPass-92a7" not in message
    assert GIT_PASSWORD not in message


def test_no_credentials_on_a_private_server_is_authentication_failed(
    fleet: Fleet, secure_git: SecureGit, tmp_path: Path
) -> None:
    anonymous = GitCredentials(ca=secure_git.ca_pem)
    with pytest.raises(FetchError) as caught:
        GitFetcher(tmp_path / "c").fetch(
            "ns", "fleet", secure_git.https.repo_url(fleet.name), _ref(), anonymous,
            timeout=TIMEOUT,
        )  # fmt: skip
    assert caught.value.reason == "AuthenticationFailed"


def test_an_untrusted_certificate_fails_without_the_ca(
    fleet: Fleet, secure_git: SecureGit, tmp_path: Path
) -> None:
    no_ca = GitCredentials(username=GIT_USER, password=GIT_PASSWORD)
    with pytest.raises(FetchError) as caught:
        GitFetcher(tmp_path / "c").fetch(
            "ns", "fleet", secure_git.https.repo_url(fleet.name), _ref(), no_ca, timeout=TIMEOUT
        )
    assert caught.value.reason == "GitOperationFailed"
    assert "certificate" in str(caught.value).lower()
    assert GIT_PASSWORD not in str(caught.value)


def test_credentials_are_never_sent_over_plain_http(
    git_server: GitServer, git_remote: RemoteRepo, tmp_path: Path
) -> None:
    creds = GitCredentials(username=GIT_USER, password=GIT_PASSWORD)
    with pytest.raises(FetchError, match="refusing to send credentials over plain http") as caught:
        GitFetcher(tmp_path / "c").fetch("ns", "r", git_remote.url, _ref(), creds, timeout=TIMEOUT)
    assert caught.value.reason == "AuthenticationFailed"


def test_credentials_in_the_url_are_refused_and_never_shown(
    secure_git: SecureGit, fleet: Fleet, tmp_path: Path
) -> None:
    url = secure_git.https.repo_url(fleet.name).replace("://", "://user:Hunter2-x@")
    with pytest.raises(FetchError) as caught:
        GitFetcher(tmp_path / "c").fetch("ns", "r", url, _ref(), None, timeout=TIMEOUT)
    assert "credentials in spec.url are not accepted" in str(caught.value)
    assert "Hunter2-x" not in str(caught.value)


def test_anonymous_fetch_over_plain_http(
    git_server: GitServer, git_remote: RemoteRepo, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    git("init", "--quiet", "--initial-branch=main", str(work))
    head = commit(work, {"a.yaml": b"a: 1\n"})
    git("push", "--quiet", git_remote.push_url, "main", cwd=work)
    got = GitFetcher(tmp_path / "c").fetch(
        "ns", "r", git_remote.url, _ref(branch="main"), None, timeout=TIMEOUT
    )
    assert got.revision == f"main@sha1:{head}"


def test_a_missing_branch_is_a_git_operation_failure(
    fleet: Fleet, secure_git: SecureGit, basic: GitCredentials, tmp_path: Path
) -> None:
    with pytest.raises(FetchError) as caught:
        GitFetcher(tmp_path / "c").fetch(
            "ns", "fleet", secure_git.https.repo_url(fleet.name), _ref(branch="nope"), basic,
            timeout=TIMEOUT,
        )  # fmt: skip
    assert caught.value.reason == "GitOperationFailed"
    assert "couldn't find remote ref refs/heads/nope" in str(caught.value)


def test_no_tag_matching_semver_is_a_git_operation_failure(
    fleet: Fleet, secure_git: SecureGit, basic: GitCredentials, tmp_path: Path
) -> None:
    with pytest.raises(FetchError, match="no tag matches the semver constraint '>=9'") as caught:
        GitFetcher(tmp_path / "c").fetch(
            "ns", "fleet", secure_git.https.repo_url(fleet.name), _ref(semver=">=9"), basic,
            timeout=TIMEOUT,
        )  # fmt: skip
    assert caught.value.reason == "GitOperationFailed"


def test_a_repository_over_the_size_bound_is_refused_and_its_cache_removed(
    fleet: Fleet, secure_git: SecureGit, basic: GitCredentials, tmp_path: Path
) -> None:
    fetcher = GitFetcher(tmp_path / "c", max_repository_bytes=1000)
    with pytest.raises(FetchError, match="takes more than 1000 bytes"):
        fetcher.fetch(
            "ns", "fleet", secure_git.https.repo_url(fleet.name), _ref(branch="main"), basic,
            timeout=TIMEOUT,
        )  # fmt: skip
    assert not fetcher.cache_of("ns", "fleet").exists()


def _ssh(secure_git: SecureGit, **overrides: object) -> GitCredentials:
    creds = GitCredentials(
        identity=secure_git.ssh.client_key, known_hosts=secure_git.ssh.known_hosts.encode()
    )
    return dataclasses.replace(creds, **overrides)  # type: ignore[arg-type]


def test_ssh_with_the_identity_and_known_hosts(
    fleet: Fleet, secure_git: SecureGit, tmp_path: Path
) -> None:
    got = GitFetcher(tmp_path / "c").fetch(
        "ns", "fleet", secure_git.ssh.repo_url(fleet.name), _ref(tag="v1.0.0"), _ssh(secure_git),
        timeout=TIMEOUT,
    )  # fmt: skip
    assert got.revision == f"v1.0.0@sha1:{fleet.first}"


def test_ssh_with_a_passphrase_protected_key(
    fleet: Fleet, secure_git: SecureGit, tmp_path: Path
) -> None:
    key = serialization.load_ssh_private_key(secure_git.ssh.client_key, None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"Passphrase-77"),
    )
    creds = _ssh(secure_git, identity=encrypted, password="Passphrase-77")
    got = GitFetcher(tmp_path / "c").fetch(
        "ns", "fleet", secure_git.ssh.repo_url(fleet.name), _ref(branch="main"), creds,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert got.commit == fleet.main
    wrong = _ssh(secure_git, identity=encrypted, password="not-it")
    with pytest.raises(FetchError, match="passphrase") as caught:
        GitFetcher(tmp_path / "d").fetch(
            "ns", "fleet", secure_git.ssh.repo_url(fleet.name), _ref(), wrong, timeout=TIMEOUT
        )
    assert caught.value.reason == "AuthenticationFailed"
    assert "not-it" not in str(caught.value)


def test_ssh_refuses_a_wrong_host_key(fleet: Fleet, secure_git: SecureGit, tmp_path: Path) -> None:
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkRYVQ8J7M1i3n1oh0rmwnGB0dZ2R0k6o2rOgvZyX8T"
    creds = _ssh(secure_git, known_hosts=f"[127.0.0.1]:{secure_git.ssh.port} {other}\n".encode())
    with pytest.raises(FetchError) as caught:
        GitFetcher(tmp_path / "c").fetch(
            "ns", "fleet", secure_git.ssh.repo_url(fleet.name), _ref(), creds, timeout=TIMEOUT
        )
    assert "host key" in str(caught.value).lower()


def test_ssh_needs_known_hosts(fleet: Fleet, secure_git: SecureGit, tmp_path: Path) -> None:
    creds = _ssh(secure_git, known_hosts=b"")
    with pytest.raises(FetchError, match="needs the key 'known_hosts'") as caught:
        GitFetcher(tmp_path / "c").fetch(
            "ns", "fleet", secure_git.ssh.repo_url(fleet.name), _ref(), creds, timeout=TIMEOUT
        )
    assert caught.value.reason == "AuthenticationFailed"


def test_ssh_with_an_unauthorized_key_is_authentication_failed(
    fleet: Fleet, secure_git: SecureGit, tmp_path: Path
) -> None:
    stranger, _ = new_key()
    with pytest.raises(FetchError) as caught:
        GitFetcher(tmp_path / "c").fetch(
            "ns", "fleet", secure_git.ssh.repo_url(fleet.name), _ref(),
            _ssh(secure_git, identity=stranger), timeout=TIMEOUT,
        )  # fmt: skip
    assert caught.value.reason == "AuthenticationFailed"
    assert "Permission denied" in str(caught.value)


def test_redirects_are_not_followed(
    git_server: GitServer, git_remote: RemoteRepo, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    git("init", "--quiet", "--initial-branch=main", str(work))
    commit(work, {"a.yaml": b"a: 1\n"})
    git("push", "--quiet", git_remote.push_url, "main", cwd=work)
    target = f"{git_remote.url}/info/refs?service=git-upload-pack"
    with serve({"/moved.git/info/refs": lambda h: h.redirect(target)}) as redirector:
        # git itself would follow this redirect of the first request by default.
        followed = git_result("ls-remote", f"{redirector.url}/moved.git")
        assert followed.returncode == 0
        with pytest.raises(FetchError) as caught:
            GitFetcher(tmp_path / "c").fetch(
                "ns", "r", f"{redirector.url}/moved.git", _ref(branch="main"), None,
                timeout=TIMEOUT,
            )  # fmt: skip
    assert caught.value.reason == "GitOperationFailed"
    assert "returned error: 302" in str(caught.value)


def test_credentials_reach_git_only_through_its_environment(tmp_path: Path) -> None:
    """While git talks to a server that never answers, look at every process on the machine."""
    token = "Proc-Visible-Token-8d1e"
    creds = GitCredentials(bearer_token=token)
    failure: list[BaseException] = []
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"https://127.0.0.1:{silent.getsockname()[1]}/fleet.git"

        def fetch() -> None:
            try:
                GitFetcher(tmp_path / "c").fetch("ns", "r", url, _ref(), creds, timeout=30)
            except FetchError as exc:
                failure.append(exc)

        worker = threading.Thread(target=fetch)
        worker.start()
        holders: list[str] = []
        while worker.is_alive():
            holders = _processes_holding(token)
            # `prlimit` sets git's memory limit and then becomes git (`core.host.command`): a
            # process caught before that exec holds git's environment; look again.
            if holders and _WRAPPER not in holders:
                break
        seen_in_argv = [pid for pid in _all_pids() if token.encode() in _read(pid, "cmdline")]
        silent.close()  # the fetch fails now
        worker.join()
    assert holders, "git never started"
    assert all(name.startswith("git") for name in holders), holders
    assert seen_in_argv == []
    assert token not in repr(dict(os.environ))
    assert failure
    assert token not in str(failure[0])


def _all_pids() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def _read(pid: str, what: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return b""


_WRAPPER = "prlimit"


def _processes_holding(token: str) -> list[str]:
    """Names of the processes whose environment holds `token`."""
    return [
        _read(pid, "comm").decode().strip()
        for pid in _all_pids()
        if token.encode() in _read(pid, "environ")
    ]


def test_what_earlier_fetches_left_behind_is_pruned_to_stay_in_bounds(
    fleet: Fleet, secure_git: SecureGit, basic: GitCredentials, tmp_path: Path
) -> None:
    fetcher = GitFetcher(tmp_path / "c", max_repository_bytes=300_000)
    url = secure_git.https.repo_url(fleet.name)
    for round_ in range(4):
        # 100 kB that does not compress: each revision alone fits, all four would not.
        head = fleet.push({"blob.bin": os.urandom(100_000)}, branch="main")
        got = fetcher.fetch("ns", "fleet", url, _ref(branch="main"), basic, timeout=TIMEOUT)
        assert got.commit == head, round_
    assert got.repository.exists()
    size = sum(p.stat().st_size for p in got.repository.rglob("*") if p.is_file())
    assert size <= 300_000
