"""The local git server, driven by the real git client over loopback HTTP.

Aspects: anonymous clone and fetch, push with credentials, push refused without them (401) or
with a wrong password, protocol v0 and v2, a multi-megabyte push sent as a chunked stream,
unknown repositories, repository names and URLs, and a clean stop with open connections.
"""

from __future__ import annotations

import base64
import http.client
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devenv.gitserver import GitServer
from tests.fixtures.gitserver import (
    GIT_PASSWORD,
    GIT_USER,
    RemoteRepo,
    commit,
    git,
    git_result,
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(path))
    return path


def _http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_push_with_credentials_then_anonymous_clone(
    work: Path, git_remote: RemoteRepo, tmp_path: Path
) -> None:
    head = commit(work, {"clusters/prod/kustomization.yaml": b"resources: []\n"})

    git("push", "--quiet", git_remote.push_url, "main", cwd=work)
    git("clone", "--quiet", git_remote.url, str(tmp_path / "clone"))

    assert git("rev-parse", "main", cwd=git_remote.path) == head
    clone = tmp_path / "clone"
    assert git("rev-parse", "HEAD", cwd=clone) == head
    assert (clone / "clusters/prod/kustomization.yaml").read_bytes() == b"resources: []\n"


def test_anonymous_fetch_sees_new_commits(
    work: Path, git_remote: RemoteRepo, tmp_path: Path
) -> None:
    commit(work, {"a.yaml": b"a: 1\n"})
    git("push", "--quiet", git_remote.push_url, "main", cwd=work)
    clone = tmp_path / "clone"
    git("clone", "--quiet", git_remote.url, str(clone))
    second = commit(work, {"a.yaml": b"a: 2\n"})
    git("push", "--quiet", git_remote.push_url, "main", cwd=work)

    git("fetch", "--quiet", "origin", cwd=clone)

    assert git("rev-parse", "origin/main", cwd=clone) == second


def test_push_without_credentials_is_refused(work: Path, git_remote: RemoteRepo) -> None:
    commit(work, {"a.yaml": b"a: 1\n"})

    pushed = git_result("push", git_remote.url, "main", cwd=work)
    status, headers = _http_status(f"{git_remote.url}/info/refs?service=git-receive-pack")

    assert pushed.returncode != 0
    assert "could not read Username" in pushed.stderr
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert git("for-each-ref", cwd=git_remote.path) == ""


def test_push_with_a_wrong_password_is_refused(
    work: Path, git_remote: RemoteRepo, git_server: GitServer
) -> None:
    commit(work, {"a.yaml": b"a: 1\n"})
    bad_url = git_remote.push_url.replace("pa%20ss", "nope", 1)
    assert bad_url != git_remote.push_url

    pushed = git_result("push", bad_url, "main", cwd=work)
    status, _ = _http_status(
        f"{git_remote.url}/info/refs?service=git-upload-pack", _basic(GIT_USER, "nope")
    )

    assert pushed.returncode != 0
    assert "Authentication failed" in pushed.stderr
    assert status == 401  # wrong credentials are refused even for a fetch
    assert git("for-each-ref", cwd=git_remote.path) == ""


def test_valid_credentials_also_fetch(work: Path, git_remote: RemoteRepo) -> None:
    commit(work, {"a.yaml": b"a: 1\n"})
    git("push", "--quiet", git_remote.push_url, "main", cwd=work)

    status, headers = _http_status(
        f"{git_remote.url}/info/refs?service=git-upload-pack", _basic(GIT_USER, GIT_PASSWORD)
    )

    assert status == 200
    assert headers["Content-Type"] == "application/x-git-upload-pack-advertisement"


@pytest.mark.parametrize(("version", "v2_seen"), [("0", False), ("2", True)])
def test_fetch_speaks_the_protocol_the_client_asks_for(
    work: Path, git_remote: RemoteRepo, tmp_path: Path, version: str, v2_seen: bool
) -> None:
    head = commit(work, {"a.yaml": b"a: 1\n"})
    git("push", "--quiet", git_remote.push_url, "main", cwd=work)
    clone = tmp_path / "fetcher"
    git("init", "--quiet", str(clone))

    fetched = git_result(
        "-c",
        f"protocol.version={version}",
        "fetch",
        git_remote.url,
        "main",
        cwd=clone,
        env={"GIT_TRACE_PACKET": "1"},
    )

    assert fetched.returncode == 0, fetched.stderr
    # The server only answers "version 2" if the Git-Protocol header reached git.
    assert ("git< version 2" in fetched.stderr) is v2_seen
    assert git("rev-parse", "FETCH_HEAD", cwd=clone) == head


def test_large_push_is_streamed_in_chunks(
    work: Path, git_remote: RemoteRepo, tmp_path: Path
) -> None:
    payload = os.urandom(2 << 20)  # random, so the pack cannot compress below the post buffer
    head = commit(work, {"blob.bin": payload})

    pushed = git_result(
        "push",
        git_remote.push_url,
        "main",
        cwd=work,
        env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"},
    )
    git("clone", "--quiet", git_remote.url, str(tmp_path / "clone"))

    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert "Transfer-Encoding: chunked" in pushed.stderr
    assert git("rev-parse", "main", cwd=git_remote.path) == head
    assert (tmp_path / "clone" / "blob.bin").read_bytes() == payload


def test_unknown_repository_is_not_found(git_server: GitServer, tmp_path: Path) -> None:
    url = git_server.repo_url("does-not-exist")

    cloned = git_result("clone", url, str(tmp_path / "clone"))
    status, _ = _http_status(f"{url}/info/refs?service=git-upload-pack")

    assert cloned.returncode != 0
    assert status == 404


def test_paths_climbing_out_of_the_root_are_not_found(git_server: GitServer) -> None:
    status, _ = _http_status(f"{git_server.url}/%2e%2e/etc/info/refs?service=git-upload-pack")

    assert status == 404


def test_repo_url_embeds_quoted_credentials(git_server: GitServer) -> None:
    url = urlsplit(git_server.repo_url("team/app", GIT_USER))

    assert url.username == GIT_USER
    assert url.password == "pa%20ss%3Aw%2Ford"
    assert url.path == "/team/app.git"
    assert git_server.repo_url("team/app.git") == f"{git_server.url}/team/app.git"


def test_repo_url_for_an_unknown_user_is_an_error(git_server: GitServer) -> None:
    with pytest.raises(KeyError, match="nobody"):
        git_server.repo_url("app", "nobody")


@pytest.mark.parametrize("name", ["../escape", "a/../../b", "/abs", "", "a//b", ".hidden"])
def test_repository_names_must_stay_inside_the_root(git_server: GitServer, name: str) -> None:
    with pytest.raises(ValueError, match="invalid repository name"):
        git_server.create_repo(name)


def test_stop_ends_open_keep_alive_connections(tmp_path: Path) -> None:
    server = GitServer(tmp_path / "root", {GIT_USER: GIT_PASSWORD})
    server.start()
    server.create_repo("app")
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    connection = http.client.HTTPConnection(str(host), port, timeout=30)
    connection.request("GET", "/app.git/info/refs?service=git-upload-pack")
    response = connection.getresponse()
    response.read()
    assert response.status == 200  # the connection now idles, kept alive

    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=20)

    assert not stopper.is_alive()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    connection.close()
