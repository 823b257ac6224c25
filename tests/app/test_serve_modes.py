"""`tidegate serve --migrate-only` and the settings of the job database."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.database import open_database
from app.migrate import HEAD, current_revision
from app.settings import from_environment, job_database_url
from cli import main as cli_main
from core.errors import InputError


def test_migrate_only_brings_the_configured_database_up_to_date(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TIDEGATE_DATABASE_URL", postgres_url)
    assert cli_main.main(["serve", "--migrate-only"]) == 0
    assert cli_main.main(["serve", "--migrate-only"]) == 0
    assert current_revision(open_database(postgres_url)) == HEAD


def test_the_default_job_database_is_sqlite_in_the_data_directory(tmp_path: Path) -> None:
    settings = from_environment({"TIDEGATE_DATA_DIR": str(tmp_path)})
    assert job_database_url(settings) == f"sqlite:///{tmp_path / 'jobs.sqlite'}"


def test_the_database_url_is_a_secret(tmp_path: Path) -> None:
    url = "postgresql://tidegate:hunter2@db/tidegate"
    settings = from_environment({"TIDEGATE_DATA_DIR": "d", "TIDEGATE_DATABASE_URL": url})
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("TIDEGATE_JOB_LEASE", "soon"), ("TIDEGATE_JOB_LEASE", "0"), ("TIDEGATE_JOB_ATTEMPTS", "2.5")],
)
def test_bad_job_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(InputError, match=name):
        from_environment({"TIDEGATE_DATA_DIR": "d", name: value})


def test_an_unsupported_database_is_refused_without_echoing_the_url() -> None:
    with pytest.raises(InputError, match="unsupported database 'mysql'") as caught:
        open_database("mysql://root:hunter2@db/tidegate")
    assert "hunter2" not in str(caught.value)


def test_an_unreachable_database_is_one_line_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIDEGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TIDEGATE_DATABASE_URL", "postgresql://tidegate:hunter2@127.0.0.1:1/db")
    assert cli_main.main(["serve", "--migrate-only"]) == 2
    error = capsys.readouterr().err
    assert "cannot migrate the job database" in error
    assert "hunter2" not in error
    assert "Traceback" not in error
