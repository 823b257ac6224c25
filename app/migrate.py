"""Bringing the job database's schema to the newest revision (Alembic), safely from many replicas.

Every process migrates at start-up; `tidegate serve --migrate-only` does it alone (a Kubernetes
init container or job). It is idempotent: at the newest revision it changes nothing. Replicas
starting together serialise on a lock held for the whole migration (PostgreSQL: a transaction
advisory lock; SQLite: the write lock of `BEGIN IMMEDIATE`), and the migration commits or rolls
back as one transaction. A database from before Alembic (tables, no version) is recognised as
revision 0001 and upgraded from there. This module never deletes data.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError

from core.errors import TidegateError

__all__ = ["HEAD", "current_revision", "upgrade"]

_SCRIPTS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x7469646567617465  # "tidegate": one lock id for every replica of the app
_LEGACY = "0001"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


HEAD = ScriptDirectory.from_config(_config(None)).get_current_head()  # type: ignore[arg-type]
"""The newest schema revision this version of Tidegate knows."""


def upgrade(engine: Engine) -> None:
    """Migrate to the newest revision, under the migration lock, in one transaction.

    Raises:
        TidegateError: the database cannot be reached or refused the migration (the driver's
            first line of explanation, which names no password).
    """
    try:
        _upgrade(engine)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise TidegateError(f"cannot migrate the job database: {reason[:300]}") from None


def _upgrade(engine: Engine) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        config = _config(connection)
        if _revision(connection) is None and inspect(connection).has_table("jobs"):
            command.stamp(config, _LEGACY)
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None before the first migration)."""
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
