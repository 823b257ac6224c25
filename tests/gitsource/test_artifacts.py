"""Artifacts: the deterministic archive and Flux's ignore rules, storage and its garbage
collection, and the read-only HTTP server, downloaded through `core.sources.artifact`."""

from __future__ import annotations

import http.client
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from core.errors import InputError
from core.sources.artifact import ArtifactError, artifact_policy, download_artifact
from reconciler.source.archive import ArchiveError, write_archive
from reconciler.source.server import ArtifactServer
from reconciler.source.storage import Storage
from tests.fixtures.gitserver import commit, git


def _repo(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    work = tmp_path / "repo"
    git("init", "--quiet", "--initial-branch=main", str(work))
    return work, commit(work, files)


def _archive(repo: Path, sha: str, ignore: str | None = None) -> bytes:
    out = io.BytesIO()
    write_archive(repo, sha, out, spec_ignore=ignore)
    return out.getvalue()


def _names(archive: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return tar.getnames()


FILES = {
    "deploy/app.yaml": b"kind: ConfigMap\n",
    "deploy/logo.png": b"\x89PNG",
    ".github/workflows/ci.yaml": b"on: push\n",
    ".sops.yaml": b"creation_rules: []\n",
    "docs/readme.md": b"# docs\n",
    "scripts/run.sh": b"#!/bin/sh\n",
}


def test_the_archive_is_deterministic_and_keeps_what_flux_keeps(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path, FILES)
    (repo / "scripts/run.sh").chmod(0o700)  # git records any owner-executable file as 100755
    sha = commit(repo, {}, "exec")
    first = _archive(repo, sha)
    time.sleep(1.1)  # a second later: no timestamp may leak into the bytes
    assert _archive(repo, sha) == first
    assert _names(first) == ["deploy/app.yaml", "docs/readme.md", "scripts/run.sh"]
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["scripts/run.sh"].mode == 0o755
    assert members["deploy/app.yaml"].mode == 0o644
    assert {m.mtime for m in members.values()} == {0}
    assert {(m.uname, m.gname, m.uid, m.gid) for m in members.values()} == {("", "", 0, 0)}


def test_a_sourceignore_replaces_the_defaults_and_spec_ignore_comes_last(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path, {**FILES, ".sourceignore": b"docs/\n"})
    # One .sourceignore pattern drops Flux's defaults: .github and images come back.
    assert _names(_archive(repo, sha)) == [
        ".github/workflows/ci.yaml",
        ".sops.yaml",
        ".sourceignore",
        "deploy/app.yaml",
        "deploy/logo.png",
        "scripts/run.sh",
    ]
    assert _names(_archive(repo, sha, "/*\n!/deploy/\n*.png\n")) == ["deploy/app.yaml"]


def test_symlinks_never_reach_the_artifact(tmp_path: Path) -> None:
    repo, _ = _repo(tmp_path, {"deploy/app.yaml": b"a: 1\n"})
    (repo / "deploy/passwd").symlink_to("/etc/passwd")
    (repo / "deploy/alias.yaml").symlink_to("app.yaml")
    sha = commit(repo, {}, "links")
    assert _names(_archive(repo, sha)) == ["deploy/app.yaml"]


def test_the_archive_size_is_bounded(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path, {"big.yaml": b"x" * 5000})
    with pytest.raises(ArchiveError, match="exceed 4096 bytes"):
        write_archive(repo, sha, io.BytesIO(), spec_ignore=None, max_bytes=4096)


def _store(storage: Storage, content: bytes, name: str = "fleet") -> str:
    return storage.store("gitrepository", "ns", name, lambda out: out.write(content)).path


def test_storage_names_artifacts_by_digest_and_collects_all_but_the_newest(
    tmp_path: Path,
) -> None:
    storage = Storage(tmp_path / "store", "http://storage.example", keep=3)
    stored = storage.store("gitrepository", "ns", "fleet", lambda out: out.write(b"one"))
    hexdigest = "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
    assert stored.path == f"gitrepository/ns/fleet/{hexdigest}.tar.gz"
    assert stored.digest == f"sha256:{hexdigest}"
    assert stored.url == f"http://storage.example/{stored.path}"
    assert stored.size == 3
    paths = [stored.path]
    for content in (b"two", b"three", b"four"):
        paths.append(_store(storage, content))
    # Ages a second apart, oldest first: two stores may fall within one tick of the file
    # system's timestamps.
    past = time.time_ns() - 60 * 10**9
    for age, path in enumerate(paths):
        os.utime(storage.root / path, ns=(past + age * 10**9,) * 2)
    removed = storage.collect("gitrepository", "ns", "fleet", paths[-1])
    assert removed == [paths[0]]
    assert [storage.exists(p) for p in paths] == [False, True, True, True]
    # Storing the same content again makes it the newest; the current artifact is never
    # collected, even when it is the oldest.
    assert _store(storage, b"two") == paths[1]
    single = Storage(tmp_path / "store", "http://storage.example", keep=1)
    assert sorted(single.collect("gitrepository", "ns", "fleet", paths[2])) == sorted(
        [paths[1], paths[3]]
    )
    assert [storage.exists(p) for p in paths] == [False, False, True, False]


def test_storage_refuses_names_that_are_not_object_names(tmp_path: Path) -> None:
    storage = Storage(tmp_path, "http://x")
    for bad in ("..", "../etc", "a/b", "UPPER", ""):
        with pytest.raises(InputError):
            storage.directory("gitrepository", bad, "fleet")
    assert not storage.exists("gitrepository/ns/fleet/../../../etc/passwd")


def test_artifacts_are_served_read_only_and_downloaded_by_url(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path, FILES)
    with ArtifactServer(tmp_path / "store") as server:
        storage = Storage(tmp_path / "store", server.url)
        stored = storage.store(
            "gitrepository",
            "ns",
            "fleet",
            lambda out: write_archive(repo, sha, out, spec_ignore=None),
        )
        target = download_artifact(
            stored.url, stored.digest, tmp_path / "got", policy=artifact_policy(allow_loopback=True)
        )
        assert (target / "deploy/app.yaml").read_bytes() == b"kind: ConfigMap\n"
        host, port = server.url.removeprefix("http://").split(":")
        for method, path, expected in [
            ("HEAD", f"/{stored.path}", 200),
            ("GET", "/gitrepository/ns/fleet/", 404),
            ("GET", "/gitrepository/../../etc/passwd", 404),
            ("GET", "/gitrepository/ns/fleet/%2e%2e%2f%2e%2e", 404),
            ("GET", f"/gitrepository/ns/fleet/{'0' * 64}.tar.gz", 404),
            ("PUT", f"/{stored.path}", 405),
            ("DELETE", f"/{stored.path}", 405),
        ]:
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            connection.close()
            assert response.status == expected, (method, path)
        storage.collect("gitrepository", "ns", "fleet", "")
        (tmp_path / "store" / stored.path).unlink()
        with pytest.raises(ArtifactError) as caught:
            download_artifact(
                stored.url, stored.digest, tmp_path / "gone",
                policy=artifact_policy(allow_loopback=True),
            )  # fmt: skip
        assert caught.value.missing


def test_a_link_planted_in_storage_is_not_followed(tmp_path: Path) -> None:
    directory = tmp_path / "store/gitrepository/ns/fleet"
    directory.mkdir(parents=True)
    planted = directory / f"{'a' * 64}.tar.gz"
    planted.symlink_to("/etc/passwd")
    with ArtifactServer(tmp_path / "store") as server:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request("GET", f"/gitrepository/ns/fleet/{planted.name}")
        response = connection.getresponse()
        assert response.status == 404
        assert b"root:" not in response.read()
        connection.close()
    assert not Storage(tmp_path / "store", "http://x").exists(
        f"gitrepository/ns/fleet/{planted.name}"
    )
