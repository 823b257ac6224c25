"""The Go version that names the pinned tools' directory is asked once per `go` binary.

A warm preview server resolves the pinned kustomize and helm on every request; each lookup used
to start `go env GOVERSION`. A stand-in `go` on PATH shows the answer is remembered while the
binary stays the same and asked again once it changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv import toolchain


def _fake_go(directory: Path, version: str) -> Path:
    go = directory / "go"
    go.write_text(f'#!/bin/sh\necho {version}\necho "$@" >> {directory}/calls\n')
    go.chmod(0o755)
    return go


def test_the_version_is_asked_once_per_go_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    _fake_go(tmp_path, "go1.99.0")

    first, second = toolchain._go_version(), toolchain._go_version()

    assert first == second == "go1.99.0"
    assert (tmp_path / "calls").read_text().splitlines() == ["env GOVERSION"]

    _fake_go(tmp_path, "go1.100.1")  # another binary in place: asked again

    assert toolchain._go_version() == "go1.100.1"
    assert len((tmp_path / "calls").read_text().splitlines()) == 2
