"""The job store's tables, as one SQLAlchemy model for SQLite and PostgreSQL.

This module only declares; Alembic's revisions in `app/migrations/versions/` create and change
the tables (a revision must match this model: a test compares them). Times are seconds since the
epoch as floats, taken from the clock of the process that writes them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["DONE", "ERROR", "QUEUED", "RUNNING", "SUPERSEDED", "deliveries", "jobs", "metadata"]

QUEUED, RUNNING, DONE, SUPERSEDED, ERROR = "queued", "running", "done", "superseded", "error"

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    # `provider:delivery id`: the key that makes a redelivery or a replay a no-op.
    Column("delivery_id", String(200), primary_key=True),
    Column("provider", String(16), nullable=False),
    Column("event", String(80), nullable=False),
    Column("received", Float, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    # SQLite's row id must be INTEGER to count up by itself.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("delivery_id", String(200), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("repository", String(400), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("head_sha", String(64), nullable=False),
    Column("work", Text, nullable=False),
    Column("state", String(16), nullable=False),
    # Queued: not claimable before this time (a retry's back-off). Running: the lease's end.
    Column("lease_until", Float, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created", Float, nullable=False),
    Column("finished", Float, nullable=True),
    Column("message", Text, nullable=True),
    Index("jobs_by_state", "state", "id"),
    Index("jobs_by_pull", "provider", "repository", "number"),
)
