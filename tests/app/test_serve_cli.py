"""`tidegate serve --help` documents every setting; bad settings are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import ENVIRONMENT, from_environment, with_tools
from cli import main as cli_main
from core.errors import InputError


def test_help_documents_every_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main.main(["serve", "--help"])
    text = capsys.readouterr().out
    for name in ENVIRONMENT:
        assert name in text


@pytest.mark.parametrize("value", ["0", "-1", "2"])
def test_a_switch_interval_out_of_range_is_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.main(["serve", "--switch-interval", value]) != 0
    assert "--switch-interval must be more than 0" in capsys.readouterr().err


def test_the_service_refuses_to_render_unconfined() -> None:
    with pytest.raises(InputError, match="TIDEGATE_SANDBOX"):
        from_environment({"TIDEGATE_DATA_DIR": "data", "TIDEGATE_SANDBOX": "off"})


def test_secrets_come_from_files_and_stay_out_of_repr(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    settings = from_environment(
        {"TIDEGATE_DATA_DIR": "data", "TIDEGATE_GITHUB_WEBHOOK_SECRET_FILE": str(secret)}
    )
    assert settings.github_webhook_secret == b"hunter2"
    assert "hunter2" not in repr(settings)


def test_the_service_locates_its_tools_by_variable_or_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("kustomize", "helm"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    settings = from_environment({"TIDEGATE_DATA_DIR": "data"})

    located = with_tools(settings)

    assert (located.kustomize, located.helm) == (
        str(tmp_path / "kustomize"),
        str(tmp_path / "helm"),
    )
    missing = from_environment({"TIDEGATE_DATA_DIR": "data", "TIDEGATE_HELM": "/nowhere/helm"})
    with pytest.raises(InputError, match=r"^helm: /nowhere/helm \(TIDEGATE_HELM\) is not an"):
        with_tools(missing)


def test_live_clusters_are_a_serve_flag_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli_main.main(["serve", "--help"])
    assert "--live-cluster clusters/NAME=KUBECONFIG[#CONTEXT]" in capsys.readouterr().out
    monkeypatch.setenv("TIDEGATE_DATA_DIR", str(tmp_path / "data"))
    code = cli_main.main(["serve", "--live-cluster", f"clusters/a={tmp_path / 'missing'}"])
    assert code == 2
    error = capsys.readouterr().err
    assert "--live-cluster: cannot read the kubeconfig of clusters/a" in error
    assert "Traceback" not in error
    assert not (tmp_path / "data").exists()  # refused before anything started
