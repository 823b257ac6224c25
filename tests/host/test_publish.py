"""Creating a directory whole, once (`core.host.publish`); the race itself is tested through its
callers (tests/app/test_mirror.py, and the OCI unpack tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.host.publish import publish_directory


def _fill(directory: Path) -> None:
    (directory / "file").write_text("whole")


def test_the_target_appears_filled_and_no_private_copy_is_left(tmp_path: Path) -> None:
    publish_directory(tmp_path / "out" / "target", _fill, prefix=".fill-")
    assert (tmp_path / "out" / "target" / "file").read_text() == "whole"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["target"]


def test_a_directory_already_there_is_kept_and_the_new_copy_removed(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "kept").write_text("first")
    publish_directory(tmp_path / "target", _fill, prefix=".fill-")
    assert [p.name for p in (tmp_path / "target").iterdir()] == ["kept"]
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_a_failed_fill_leaves_neither_target_nor_copy(tmp_path: Path) -> None:
    def fail(directory: Path) -> None:
        _fill(directory)
        raise RuntimeError("fill failed")

    with pytest.raises(RuntimeError, match="fill failed"):
        publish_directory(tmp_path / "target", fail, prefix=".fill-")
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("not a directory")
    with pytest.raises(NotADirectoryError):
        publish_directory(tmp_path / "target", _fill, prefix=".fill-")
    assert (tmp_path / "target").read_text() == "not a directory"
    assert [p.name for p in tmp_path.iterdir()] == ["target"]
