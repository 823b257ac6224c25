"""Artifacts downloaded by URL from a real loopback HTTP server, verified and unpacked; hostile
archives of every kind are refused and leave nothing behind."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from core.sources.artifact import (
    ArtifactError,
    ArtifactLimits,
    artifact_policy,
    download_artifact,
    extract_artifact,
    verify_digest,
)
from devenv.ports import refusing_port
from tests.fetch.servers import LEAKY_BODY, serve

Entry = Callable[[tarfile.TarFile], None]


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> Entry:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))

    return add


def special(name: str, kind: bytes, linkname: str = "") -> Entry:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    return add


def directory(name: str) -> Entry:
    return special(name, tarfile.DIRTYPE)


def tarball(*entries: Entry, gzip: bool = True) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gzip else "w") as tar:
        for add in entries:
            add(tar)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def refused(tmp_path: Path, archive: bytes, limits: ArtifactLimits | None = None) -> str:
    target = tmp_path / "out"
    with pytest.raises(ArtifactError) as caught:
        extract_artifact(archive, target, limits=limits, artifact="http://storage/a.tar.gz")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind
    return str(caught.value)


def test_a_plain_archive_unpacks_with_its_directories_and_executable_bits(tmp_path: Path) -> None:
    archive = tarball(
        directory("./"),
        directory("deploy"),
        file("deploy/app.yaml", b"kind: ConfigMap\n"),
        file("./scripts/run.sh", b"#!/bin/sh\n", mode=0o755),
    )
    extract_artifact(archive, tmp_path / "out", artifact="a")
    assert (tmp_path / "out/deploy/app.yaml").read_bytes() == b"kind: ConfigMap\n"
    assert (tmp_path / "out/scripts/run.sh").stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_uncompressed_tar_is_accepted_too(tmp_path: Path) -> None:
    extract_artifact(tarball(file("a.yaml"), gzip=False), tmp_path / "out", artifact="a")
    assert (tmp_path / "out/a.yaml").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (file("/etc/passwd"), "has an absolute path"),
        (file("../outside.yaml"), "leaves the artifact root"),
        (file("deploy/../../outside.yaml"), "leaves the artifact root"),
        (file("a\\..\\b.yaml"), "forbidden character"),
        (special("up", tarfile.SYMTYPE, "../outside"), "link 'up' points outside"),
        (special("abs", tarfile.SYMTYPE, "/etc/passwd"), "link 'abs' points outside"),
        (special("a/b/up", tarfile.SYMTYPE, "../../../x"), "link 'a/b/up' points outside"),
        (special("hard", tarfile.LNKTYPE, "../x"), "link 'hard' points outside"),
        (special("hard", tarfile.LNKTYPE, "/etc/shadow"), "link 'hard' points outside"),
        (special("tty", tarfile.CHRTYPE), "device, FIFO or sparse"),
        (special("disk", tarfile.BLKTYPE), "device, FIFO or sparse"),
        (special("pipe", tarfile.FIFOTYPE), "device, FIFO or sparse"),
    ],
)
def test_hostile_entries_fail_the_whole_artifact(tmp_path: Path, entry: Entry, reason: str) -> None:
    message = refused(tmp_path, tarball(file("ok.yaml"), entry))
    assert message.startswith("artifact http://storage/a.tar.gz: ")
    assert reason in message


def test_links_that_stay_inside_are_skipped_and_never_followed(tmp_path: Path) -> None:
    archive = tarball(
        file("real.yaml", b"real"),
        special("deploy/alias.yaml", tarfile.SYMTYPE, "../real.yaml"),
        special("copy.yaml", tarfile.LNKTYPE, "real.yaml"),
        # Had the link been created, this write would go through it to real.yaml.
        file("alias", b"late"),
        special("dir-link", tarfile.SYMTYPE, "deploy"),
        file("dir-link/new.yaml", b"in a real directory"),
    )
    extract_artifact(archive, tmp_path / "out", artifact="a")
    out = tmp_path / "out"
    assert (out / "real.yaml").read_bytes() == b"real"
    assert not (out / "deploy/alias.yaml").exists()
    assert not (out / "copy.yaml").exists()
    assert (out / "dir-link").is_dir()
    assert not (out / "dir-link").is_symlink()
    assert not any(p.is_symlink() for p in out.rglob("*"))


def test_the_total_size_is_capped(tmp_path: Path) -> None:
    archive = tarball(file("a", b"x" * 600), file("b", b"x" * 600))
    message = refused(tmp_path, archive, ArtifactLimits(unpacked_bytes=1000))
    assert "unpacks to more than 1000 bytes" in message


def test_a_compression_bomb_stops_at_the_size_cap(tmp_path: Path) -> None:
    archive = tarball(file("zeros", bytes(20 << 20)))
    assert len(archive) < 64 << 10
    message = refused(tmp_path, archive, ArtifactLimits(unpacked_bytes=1 << 20))
    assert "unpacks to more than" in message


def test_the_number_of_entries_is_capped(tmp_path: Path) -> None:
    archive = tarball(*(file(f"f{i}") for i in range(11)))
    assert "more than 10 entries" in refused(tmp_path, archive, ArtifactLimits(files=10))


def test_the_depth_is_capped(tmp_path: Path) -> None:
    archive = tarball(file("/".join(["d"] * 9) + "/f"))
    assert "nested deeper than 8" in refused(tmp_path, archive, ArtifactLimits(depth=8))


def test_a_file_and_a_directory_of_one_name_are_refused(tmp_path: Path) -> None:
    assert "both a file and a directory" in refused(tmp_path, tarball(file("a"), file("a/b")))
    assert "both a file and a directory" in refused(tmp_path, tarball(file("a/b"), file("a")))


def test_garbage_and_truncated_archives_are_refused(tmp_path: Path) -> None:
    assert "not a valid tar.gz archive" in refused(tmp_path, LEAKY_BODY)
    whole = tarball(file("big", bytes(range(256)) * 400))
    assert "not a valid tar.gz archive" in refused(tmp_path, whole[: len(whole) // 2])


def test_an_existing_target_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(ArtifactError, match="already exists"):
        extract_artifact(tarball(file("a")), tmp_path / "out", artifact="a")


def test_digests_are_checked_by_algorithm() -> None:
    data = b"content"
    verify_digest(data, sha256(data), artifact="a")
    verify_digest(data, "sha512:" + hashlib.sha512(data).hexdigest(), artifact="a")
    with pytest.raises(ArtifactError, match=r"digest mismatch: expected sha256:0{64}"):
        verify_digest(data, "sha256:" + "0" * 64, artifact="a")
    with pytest.raises(ArtifactError, match="unsupported digest 'md5:"):
        verify_digest(data, "md5:" + "0" * 32, artifact="a")
    with pytest.raises(ArtifactError, match="malformed sha256 digest"):
        verify_digest(data, "sha256:XYZ", artifact="a")


def test_an_artifact_is_downloaded_by_url_verified_and_unpacked(tmp_path: Path) -> None:
    archive = tarball(file("deploy/app.yaml", b"kind: ConfigMap\n"))
    with serve({"/gitrepository/ns/repo/abc.tar.gz": lambda h: h.reply(200, archive)}) as server:
        url = f"{server.url}/gitrepository/ns/repo/abc.tar.gz"
        got = download_artifact(
            url, sha256(archive), tmp_path / "out", policy=artifact_policy(allow_loopback=True)
        )
    assert (got / "deploy/app.yaml").read_bytes() == b"kind: ConfigMap\n"


def test_loopback_storage_needs_the_operators_opt_in(tmp_path: Path) -> None:
    archive = tarball(file("a"))
    with serve({"/a.tar.gz": lambda h: h.reply(200, archive)}) as server:
        with pytest.raises(ArtifactError) as caught:
            download_artifact(
                f"{server.url}/a.tar.gz",
                sha256(archive),
                tmp_path / "out",
                policy=artifact_policy(),
                owner="GitRepository flux-system/podinfo",
            )
        assert server.seen == []
    message = str(caught.value)
    assert f"{server.url}/a.tar.gz of GitRepository flux-system/podinfo" in message
    assert "loopback" in message


def test_a_tampered_download_is_refused_before_unpacking(tmp_path: Path) -> None:
    archive = tarball(file("a"))
    tampered = tarball(file("a", b"evil"))
    with (
        serve({"/a.tar.gz": lambda h: h.reply(200, tampered)}) as server,
        pytest.raises(ArtifactError, match="digest mismatch"),
    ):
        download_artifact(
            f"{server.url}/a.tar.gz",
            sha256(archive),
            tmp_path / "out",
            policy=artifact_policy(allow_loopback=True),
        )
    assert not (tmp_path / "out").exists()


def test_a_garbage_collected_artifact_is_reported_missing(tmp_path: Path) -> None:
    with serve({}) as server, pytest.raises(ArtifactError) as caught:
        download_artifact(
            f"{server.url}/gone.tar.gz?token=secret",
            sha256(b""),
            tmp_path / "out",
            policy=artifact_policy(allow_loopback=True),
        )
    assert caught.value.missing
    assert not caught.value.unavailable
    assert "HTTP 404" in str(caught.value)
    assert "secret" not in str(caught.value)
    assert LEAKY_BODY.decode() not in str(caught.value)


def test_unreachable_storage_is_reported_unavailable(tmp_path: Path) -> None:
    with refusing_port() as port, pytest.raises(ArtifactError) as caught:
        download_artifact(
            f"http://127.0.0.1:{port}/a.tar.gz",
            sha256(b""),
            tmp_path / "out",
            policy=artifact_policy(allow_loopback=True),
        )
    assert caught.value.unavailable
    assert not caught.value.missing


def test_an_oversized_download_is_refused(tmp_path: Path) -> None:
    archive = tarball(file("a", bytes(range(256)) * 64))
    with (
        serve({"/a.tar.gz": lambda h: h.reply(200, archive)}) as server,
        pytest.raises(ArtifactError, match="larger than 100 bytes"),
    ):
        download_artifact(
            f"{server.url}/a.tar.gz",
            sha256(archive),
            tmp_path / "out",
            policy=artifact_policy(allow_loopback=True),
            limits=ArtifactLimits(download_bytes=100),
        )


def test_a_malformed_url_names_the_owner(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="of Kustomization a/b: refused: scheme"):
        download_artifact(
            "file:///etc/passwd",
            sha256(b""),
            tmp_path / "out",
            policy=artifact_policy(),
            owner="Kustomization a/b",
        )
