"""Locating kustomize and helm for production: configured path, else PATH, else a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InputError
from core.host.tools import locate

SETTING = "--kustomize or TIDEGATE_KUSTOMIZE"


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_a_configured_path_is_used_as_given(tmp_path: Path) -> None:
    tool = _executable(tmp_path / "my-kustomize")

    assert locate("kustomize", tool, setting=SETTING) == tool


def test_without_configuration_the_tool_is_found_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = _executable(tmp_path / "kustomize")
    monkeypatch.setenv("PATH", str(tmp_path))

    assert locate("kustomize", None, setting=SETTING) == tool
    assert locate("kustomize", "", setting=SETTING) == tool
    assert locate("kustomize", "kustomize", setting=SETTING) == tool


def test_a_tool_missing_from_path_is_named_with_how_to_give_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(InputError) as caught:
        locate("helm", None, setting="--helm or TIDEGATE_HELM")

    assert str(caught.value) == (
        "helm: no 'helm' on PATH; install helm or give its path with --helm or TIDEGATE_HELM"
    )


@pytest.mark.parametrize("kind", ["missing", "directory", "not-executable"])
def test_a_configured_path_that_cannot_run_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "kustomize"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-executable":
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)

    with pytest.raises(InputError) as caught:
        locate("kustomize", path, setting=SETTING)

    assert str(caught.value) == f"kustomize: {path} ({SETTING}) is not an executable file"
