"""Unpacking artifact layers: links skipped, escapes refused, sizes bounded."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from core.oci.unpack import UnpackError, UnpackLimits, unpack


def _archive(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, mode="w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_files_land_below_the_target(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "a.tgz", [_file("./deploy/app.yaml", b"kind: A\n"), _file("/top.yaml", b"x")]
    )
    (tmp_path / "out").mkdir()
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out/deploy/app.yaml").read_bytes() == b"kind: A\n"
    assert (tmp_path / "out/top.yaml").read_bytes() == b"x"


def test_links_are_skipped(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "a.tgz",
        [
            _link("passwd", "/etc/passwd"),
            _link("hard", "/etc/passwd", tarfile.LNKTYPE),
            _file("kept.yaml", b"ok"),
        ],
    )
    (tmp_path / "out").mkdir()
    unpack(archive, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["kept.yaml"]


def test_an_entry_leaving_the_root_fails(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tgz", [_file("../evil.yaml", b"x")])
    (tmp_path / "out").mkdir()
    with pytest.raises(UnpackError, match="outside its root"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "evil.yaml").exists()


def test_sizes_and_counts_are_bounded(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tgz", [_file(f"f{i}", b"0" * 100) for i in range(5)])
    (tmp_path / "out").mkdir()
    with pytest.raises(UnpackError, match="more than 300 bytes"):
        unpack(archive, tmp_path / "out", UnpackLimits(bytes=300))
    with pytest.raises(UnpackError, match="more than 3 entries"):
        unpack(archive, tmp_path / "out", UnpackLimits(files=3))


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "a.tgz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "out").mkdir()
    with pytest.raises(UnpackError, match="not a valid tar archive"):
        unpack(tmp_path / "a.tgz", tmp_path / "out")
