"""Durable jobs: a delivery is acknowledged only once it is stored here (SQLite).

One table of deliveries (their ids de-duplicate redeliveries and replays) and one of jobs. A job
is claimed under a lease; a worker that dies leaves its lease to expire, and the job is claimed
again. A review of a newer head supersedes queued reviews of the same pull request, and a
closed pull request drops its queued work. Claiming runs in an immediate (write-locked)
transaction, so two workers never claim the same job. Effects are the worker's business; they
are idempotent (a comment is edited in place, a report replaced), which makes re-running a job
after a crash safe.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.vcs.webhooks import Delivery, Provider, Work, WorkKind

__all__ = ["Job", "JobStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    event TEXT NOT NULL,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    repository TEXT NOT NULL,
    number INTEGER NOT NULL,
    head_sha TEXT NOT NULL,
    work TEXT NOT NULL,
    state TEXT NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, id);
CREATE INDEX IF NOT EXISTS jobs_by_pull ON jobs (provider, repository, number);
"""

QUEUED, RUNNING, DONE, SUPERSEDED = "queued", "running", "done", "superseded"


@dataclass(frozen=True)
class Job:
    """A claimed job."""

    id: int
    provider: Provider
    work: Work
    attempts: int


class JobStore:
    """The job queue in one SQLite file (WAL mode, safe across processes on one host)."""

    def __init__(self, path: Path, *, lease: float = 600.0) -> None:
        self._path = path
        self._lease = lease
        self._local = threading.local()
        self._connection().executescript(_SCHEMA)

    def record(self, delivery: Delivery) -> bool:
        """Store a delivery and its work; False if this delivery id was stored before."""
        now = time.time()
        with self._transaction() as db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)",
                (_key(delivery), delivery.provider.value, delivery.event, now),
            ).rowcount
            if not inserted:
                return False
            work = delivery.work
            if work is None:
                return True
            pull = (delivery.provider.value, work.repository, work.number)
            if work.kind in (WorkKind.REVIEW, WorkKind.CLOSE):
                db.execute(
                    "UPDATE jobs SET state = ? WHERE state = ? AND provider = ? AND repository = ?"
                    " AND number = ? AND head_sha != ''",
                    (SUPERSEDED, QUEUED, *pull),
                )
            if work.kind is WorkKind.CLOSE:
                return True
            db.execute(
                "INSERT INTO jobs (delivery_id, provider, repository, number, head_sha, work,"
                " state, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_key(delivery), *pull, work.head_sha, _dump(work), QUEUED, now),
            )
        return True

    def claim(self) -> Job | None:
        """Take the oldest queued job, or one whose worker's lease expired."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, provider, work, attempts FROM jobs WHERE state = ?"
                " OR (state = ? AND lease_until < ?) ORDER BY id LIMIT 1",
                (QUEUED, RUNNING, now),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                (RUNNING, now + self._lease, row[0]),
            )
        return Job(row[0], Provider(row[1]), _load(row[2]), row[3] + 1)

    def finish(self, job: Job) -> None:
        """Mark a job done."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = ? WHERE id = ?", (DONE, job.id))

    def newer_head(self, job: Job) -> bool:
        """Whether a later review of the same pull request names another head (this is stale)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT 1 FROM jobs WHERE provider = ? AND repository = ? AND number = ?"
                " AND id > ? AND head_sha != '' AND head_sha != ? LIMIT 1",
                (
                    job.provider.value,
                    job.work.repository,
                    job.work.number,
                    job.id,
                    job.work.head_sha,
                ),
            ).fetchone()
        return row is not None

    def depth(self) -> int:
        """Jobs waiting or running."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", (QUEUED, RUNNING)
            ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        """Jobs by state (for tests and metrics)."""
        with self._transaction() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state: count for state, count in rows}

    def deliveries(self) -> int:
        """How many deliveries are stored."""
        with self._transaction() as db:
            return int(db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared between threads)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # An acknowledged delivery must survive a crash of the machine, not only the process.
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _key(delivery: Delivery) -> str:
    return f"{delivery.provider.value}:{delivery.delivery_id}"


def _dump(work: Work) -> str:
    return json.dumps(dataclasses.asdict(work), sort_keys=True)


def _load(text: str) -> Work:
    fields = json.loads(text)
    fields["kind"] = WorkKind(fields["kind"])
    return Work(**fields)
