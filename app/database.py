"""Opening the job database: an embedded SQLite file, or a PostgreSQL server shared by replicas.

SQLite is opened so that every transaction takes the write lock at its start (`BEGIN
IMMEDIATE`): two processes then never both read a job as free, and no transaction has to be
retried halfway for a lock upgrade. Each process keeps one SQLite connection: its threads queue
for it in order instead of polling SQLite's lock with sleeps, which is what made acknowledgements
wait for seconds under load. Writes are `synchronous=NORMAL` in WAL mode: a commit is durable
against a crash of the process (or of every process), not fsynced one by one; only a power loss
or kernel crash can roll back the last commits since the WAL was synced. That is durable enough
for deliveries: such a loss equals a delivery the provider failed to send (providers do not
promise delivery either), the pull request has no passing report, so the gate stays closed, and
the next push or `/tidegate preview` reviews it again. This module opens connections; it knows
no table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.errors import InputError

__all__ = ["open_database", "sqlite_url"]


def sqlite_url(path: Path) -> str:
    """The URL of an SQLite file."""
    return f"sqlite:///{path}"


def open_database(url: str) -> Engine:
    """An engine for `url` (`sqlite:///FILE` or `postgresql+psycopg://...`).

    Raises:
        InputError: the URL is malformed or names another kind of database; the message never
            repeats the URL, which may hold a password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError("TIDEGATE_DATABASE_URL is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite(url)
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        # pool_pre_ping: a replica outlives restarts of the server and failovers.
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
    raise InputError(
        f"TIDEGATE_DATABASE_URL: unsupported database {backend[:40]!r} (sqlite or postgresql)"
    )


def _sqlite(url: str) -> Engine:
    # One connection per process (see the module docstring); a thread waits up to 30 s for it.
    engine = create_engine(
        url, connect_args={"timeout": 30.0}, pool_size=1, max_overflow=0, pool_timeout=30.0
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        # Let SQLAlchemy's `begin` event below open transactions, not the driver's own guesses.
        dbapi.isolation_level = None
        dbapi.execute("PRAGMA journal_mode=WAL")
        dbapi.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
