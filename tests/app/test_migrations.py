"""Schema migrations (Alembic) on SQLite and a real PostgreSQL server: idempotent, safe from
replicas starting together, faithful to the model, and able to adopt a pre-Alembic database."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from app.database import open_database, sqlite_url
from app.migrate import HEAD, current_revision, upgrade
from app.schema import metadata
from app.store import JobStore
from core.vcs.webhooks import Delivery, Provider, Work, WorkKind


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    engine = open_database(database_url)
    assert current_revision(engine) is None
    upgrade(engine)
    JobStore(engine).record(
        Delivery(Provider.GITHUB, "d1", "pull_request", Work(WorkKind.REVIEW, "a/b", 1, "c" * 40))
    )
    upgrade(engine)
    assert current_revision(engine) == HEAD
    assert JobStore(engine).counts() == {"queued": 1}


def test_the_migrations_build_exactly_the_model(job_database: Engine) -> None:
    with job_database.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_replicas_migrating_together_all_succeed(database_url: str) -> None:
    errors: list[BaseException] = []

    def start_replica() -> None:
        try:
            upgrade(open_database(database_url))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start_replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert current_revision(open_database(database_url)) == HEAD


def test_a_database_from_before_migrations_is_adopted_with_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    legacy = sqlite3.connect(path)
    legacy.executescript(
        """
        CREATE TABLE deliveries (delivery_id TEXT PRIMARY KEY, provider TEXT NOT NULL,
            event TEXT NOT NULL, received REAL NOT NULL);
        CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL,
            provider TEXT NOT NULL, repository TEXT NOT NULL, number INTEGER NOT NULL,
            head_sha TEXT NOT NULL, work TEXT NOT NULL, state TEXT NOT NULL,
            lease_until REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL);
        INSERT INTO jobs (delivery_id, provider, repository, number, head_sha, work, state,
            created) VALUES ('github:d1', 'github', 'acme/fleet', 1, 'aaaa',
            '{"kind": "review", "repository": "acme/fleet", "number": 1, "head_sha": "aaaa"}',
            'queued', 1.0);
        """
    )
    legacy.close()
    engine = open_database(sqlite_url(path))
    upgrade(engine)
    assert current_revision(engine) == HEAD
    assert {c["name"] for c in inspect(engine).get_columns("jobs")} >= {"finished", "message"}
    job = JobStore(engine).claim()
    assert job is not None
    assert job.work.head_sha == "aaaa"
