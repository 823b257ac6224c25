"""Durable jobs: a delivery is acknowledged only once it is stored here.

One table of deliveries (their ids de-duplicate redeliveries and replays) and one of jobs, in
SQLite (embedded, one host) or PostgreSQL (several replicas), through one SQLAlchemy model
(app/schema.py). The rules:

- A review of a newer head supersedes queued reviews of the same pull request; a closed pull
  request drops its queued work. A running job of an older head finds out through `newer_head`
  and publishes nothing.
- A delivery is stored in one transaction with its work (and the supersession it causes). On
  PostgreSQL that transaction is a single statement sent in autocommit mode, one round trip to
  the server instead of five (begin, three statements, commit): every round trip is a chance
  for the acknowledgement to wait for a busy server process. It still commits (and waits for
  the commit to be durable, `synchronous_commit` as the server has it) before the answer. The
  statement's SQL is compiled once and sent on the pooled connection's driver (psycopg, which
  prepares it on the server after a few uses), not through SQLAlchemy's execution layer, whose
  per-call work was most of the acknowledgement's own CPU time in the database. A connection
  the server dropped (a restart, a failover) is found out by that statement, not by a ping
  before each delivery; the pool is then emptied and the delivery sent once more on a new
  connection: the delivery id makes that safe, a first attempt that did commit makes it a
  duplicate.
- A job is claimed under a lease. On PostgreSQL the claim locks the row with `FOR UPDATE SKIP
  LOCKED`, so replicas claim different jobs without waiting on each other; on SQLite every
  transaction holds the write lock. Either way no two workers hold the same job.
- A worker that dies leaves its lease to expire and the job is claimed again; a job that failed
  is queued again after a back-off. After `max_attempts` claims a job ends in `error` with a
  message instead of running again.
- `finish` and `retry` apply only to the attempt that claimed the job (the attempt number fences
  a worker whose lease ran out), and every effect of a job is idempotent (a comment is edited in
  place, a report replaced), so running a job again after a crash is safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    Engine,
    Float,
    String,
    Text,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from app.schema import DONE, ERROR, QUEUED, RUNNING, SUPERSEDED, deliveries, jobs
from core.vcs.webhooks import Delivery, Provider, Work, WorkKind

__all__ = ["Job", "JobStore"]


@dataclass(frozen=True)
class Job:
    """A claimed job: `attempts` counts this claim too."""

    id: int
    provider: Provider
    work: Work
    attempts: int


class JobStore:
    """The job queue on one database (migrated beforehand by app/migrate.py)."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease: float = 600.0,
        max_attempts: int = 5,
        backoff: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._lease = lease
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._clock = clock
        self._at_once = engine.dialect.name == "postgresql"

    def record(self, delivery: Delivery) -> bool:
        """Store a delivery and its work; False if this delivery id was stored before.

        One short transaction of prebuilt statements: this runs before every acknowledgement,
        so nothing here builds SQL per call.
        """
        now = self._clock()
        key = _key(delivery)
        provider = delivery.provider.value
        if self._at_once:
            try:
                return _record_at_once(self._engine, delivery, key, now)
            except _LostConnectionError:
                # The server dropped the connection, and likely every other one it had with
                # this pool (a restart, a failover): start the pool afresh and send it again.
                self._engine.dispose()
            return _record_at_once(self._engine, delivery, key, now)
        with self._engine.begin() as db:
            inserted = db.execute(
                _INSERT_DELIVERY[db.dialect.name == "postgresql"],
                {
                    "delivery_id": key,
                    "provider": provider,
                    "event": delivery.event[:80],
                    "received": now,
                },
            ).first()
            if inserted is None:
                return False
            work = delivery.work
            if work is None:
                return True
            pull = {"p": provider, "r": work.repository, "n": work.number}
            if work.kind in (WorkKind.REVIEW, WorkKind.CLOSE):
                db.execute(_SUPERSEDE, {**pull, "now": now})
            if work.kind is WorkKind.CLOSE:
                return True
            db.execute(
                _INSERT_JOB,
                {
                    "delivery_id": key,
                    "provider": provider,
                    "repository": work.repository,
                    "number": work.number,
                    "head_sha": work.head_sha,
                    "work": _dump(work),
                    "state": QUEUED,
                    "created": now,
                },
            )
        return True

    def claim(self) -> Job | None:
        """Take the oldest claimable job: queued and due, or running with an expired lease.

        A job that has used up its attempts is ended in `error` here and the next one taken.
        """
        now = self._clock()
        with self._engine.begin() as db:
            while True:
                row = db.execute(
                    select(jobs.c.id, jobs.c.provider, jobs.c.work, jobs.c.attempts)
                    .where(
                        or_(
                            and_(jobs.c.state == QUEUED, jobs.c.lease_until <= now),
                            and_(jobs.c.state == RUNNING, jobs.c.lease_until < now),
                        )
                    )
                    .order_by(jobs.c.id)
                    .limit(1)
                    # PostgreSQL: skip rows another replica is claiming (SQLite ignores this).
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                if row.attempts >= self._max_attempts:
                    message = f"gave up after {row.attempts} attempts"
                    db.execute(
                        update(jobs)
                        .where(jobs.c.id == row.id)
                        .values(state=ERROR, finished=now, message=message)
                    )
                    continue
                db.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id)
                    .values(state=RUNNING, lease_until=now + self._lease, attempts=row.attempts + 1)
                )
                return Job(row.id, Provider(row.provider), _load(row.work), row.attempts + 1)

    def finish(self, job: Job) -> bool:
        """Mark a job done; False if this attempt no longer holds it (its lease was taken over)."""
        with self._engine.begin() as db:
            return bool(
                db.execute(
                    update(jobs).where(self._held(job)).values(state=DONE, finished=self._clock())
                ).rowcount
            )

    def retry(self, job: Job, reason: str) -> str:
        """Give a failed attempt's job back: queued after a back-off, or `error` at the cap.

        Returns the job's new state (unchanged if this attempt no longer holds it).
        """
        now = self._clock()
        if job.attempts >= self._max_attempts:
            values: dict[str, Any] = {
                "state": ERROR,
                "finished": now,
                "message": f"gave up after {job.attempts} attempts: {reason}"[:2000],
            }
        else:
            values = {"state": QUEUED, "lease_until": now + self._backoff * job.attempts}
        with self._engine.begin() as db:
            changed = db.execute(update(jobs).where(self._held(job)).values(**values)).rowcount
            if changed:
                return str(values["state"])
            return str(db.execute(select(jobs.c.state).where(jobs.c.id == job.id)).scalar_one())

    def newer_head(self, job: Job) -> bool:
        """Whether a later review of the same pull request names another head (this is stale)."""
        with self._engine.begin() as db:
            row = db.execute(
                select(jobs.c.id)
                .where(
                    jobs.c.provider == job.provider.value,
                    jobs.c.repository == job.work.repository,
                    jobs.c.number == job.work.number,
                    jobs.c.id > job.id,
                    jobs.c.head_sha != "",
                    jobs.c.head_sha != job.work.head_sha,
                )
                .limit(1)
            ).first()
        return row is not None

    def depth(self) -> int:
        """Jobs waiting or running."""
        with self._engine.begin() as db:
            count = db.execute(
                select(func.count()).select_from(jobs).where(jobs.c.state.in_((QUEUED, RUNNING)))
            ).scalar_one()
        return int(count)

    def counts(self) -> dict[str, int]:
        """Jobs by state (for tests and metrics)."""
        with self._engine.begin() as db:
            rows = db.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all()
        return {str(state): int(count) for state, count in rows}

    def message(self, job_id: int) -> str | None:
        """Why a job ended in `error` (None otherwise)."""
        with self._engine.begin() as db:
            found = db.execute(select(jobs.c.message).where(jobs.c.id == job_id)).scalar()
        return None if found is None else str(found)

    def deliveries(self) -> int:
        """How many deliveries are stored."""
        with self._engine.begin() as db:
            return int(db.execute(select(func.count()).select_from(deliveries)).scalar_one())

    def ping(self) -> None:
        """Reach the database (readiness); raises whatever the driver raises."""
        with self._engine.connect() as db:
            db.execute(select(1))

    @staticmethod
    def _held(job: Job) -> Any:
        return and_(jobs.c.id == job.id, jobs.c.state == RUNNING, jobs.c.attempts == job.attempts)


def _insert_delivery(dialect: Any) -> Any:
    """INSERT that does nothing if the delivery id is stored (no error, so no rollback)."""
    return (
        dialect.insert(deliveries)
        .on_conflict_do_nothing()
        # The returned row tells "inserted" apart from "was there" (rowcount may be -1).
        .returning(deliveries.c.delivery_id)
    )


# Built once: SQLAlchemy then reuses their compiled form instead of building SQL per delivery.
_INSERT_DELIVERY = (_insert_delivery(sqlite), _insert_delivery(postgresql))
"""Indexed by "is the database PostgreSQL"."""


def _queued_reviews_of(
    provider: BindParameter[Any], repository: BindParameter[Any], number: BindParameter[Any]
) -> ColumnElement[bool]:
    """The queued reviews (jobs with a head) of one pull request: what a newer head supersedes."""
    return and_(
        jobs.c.provider == provider,
        jobs.c.repository == repository,
        jobs.c.number == number,
        jobs.c.state == QUEUED,
        jobs.c.head_sha != "",
    )


_SUPERSEDE = (
    update(jobs)
    .where(_queued_reviews_of(bindparam("p"), bindparam("r"), bindparam("n")))
    .values(state=SUPERSEDED, finished=bindparam("now"))
)
_INSERT_JOB = jobs.insert()


class _LostConnectionError(Exception):
    """The connection broke under `_record_at_once`; it has been discarded from the pool."""


def _record_at_once(engine: Engine, delivery: Delivery, key: str, now: float) -> bool:
    """`JobStore.record` on PostgreSQL: one statement, in autocommit mode, on the driver.

    Raises:
        _LostConnectionError: the connection broke; the caller may send it again.
    """
    work = delivery.work
    statement = _AT_ONCE[None if work is None else work.kind]
    values: dict[str, Any] = {
        **statement.fixed,
        "key": key,
        "prov": delivery.provider.value,
        "ev": delivery.event[:80],
        "now": now,
    }
    if work is not None:
        values |= {
            "repo": work.repository,
            "num": work.number,
            "sha": work.head_sha,
            "job": _dump(work),
        }
    pooled = engine.raw_connection()  # no ping: the statement itself finds a dropped connection
    try:
        driver: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
        try:
            # A single statement is its own transaction: no BEGIN and COMMIT to send.
            driver.autocommit = True
            # Prepared on the server at its first use on this connection: later ones only bind.
            cursor = driver.execute(statement.sql, values, prepare=True)
            return cursor.fetchone() is not None
        except psycopg.OperationalError as exc:
            if not driver.broken and not driver.closed:
                raise
            pooled.invalidate(exc)
            raise _LostConnectionError from exc
        finally:
            if not driver.closed and not driver.broken:
                # The pool's other users (claims, reads) run transactions on it.
                driver.autocommit = False
    finally:
        pooled.close()


@dataclass(frozen=True)
class _Statement:
    """A statement compiled for psycopg: its SQL and the values SQLAlchemy bound in it."""

    sql: str
    fixed: dict[str, Any]


def _compiled(statement: Any) -> _Statement:
    compiled = statement.compile(dialect=psycopg_dialect.dialect())  # type: ignore[no-untyped-call]
    # The literals the statement builder bound (states, the empty head); the rest come per call.
    fixed = {name: value for name, value in compiled.params.items() if name not in _PER_CALL}
    return _Statement(str(compiled), fixed)


_PER_CALL = frozenset({"key", "prov", "ev", "now", "repo", "num", "sha", "job"})
"""The values `_record_at_once` gives. None is named like a column of `jobs`: SQLAlchemy would
add it to the UPDATE's SET."""


def _at_once(supersede: bool, queue: bool) -> Any:
    """PostgreSQL: store a delivery, supersede and queue its work, as one statement.

    The statement returns the delivery's key, or no row if it was stored before. It supersedes
    queued reviews of the delivery's pull request if `supersede`, and queues a job if `queue`.

    The supersession and the new job both hang on the delivery's insert: a redelivery changes
    nothing. All parts see the same snapshot, so the new job never supersedes itself.
    """
    stored = (
        postgresql.insert(deliveries)
        .values(
            delivery_id=bindparam("key"),
            provider=bindparam("prov"),
            event=bindparam("ev"),
            received=bindparam("now"),
        )
        .on_conflict_do_nothing()
        .returning(deliveries.c.delivery_id)
        .cte("stored")
    )
    statement = select(stored.c.delivery_id)
    if supersede:
        statement = statement.add_cte(
            update(jobs)
            .where(
                exists(select(stored.c.delivery_id)),
                _queued_reviews_of(bindparam("prov"), bindparam("repo"), bindparam("num")),
            )
            .values(state=SUPERSEDED, finished=bindparam("now"))
            .cte("superseded")
        )
    if queue:
        columns = ("delivery_id", "provider", "repository", "number", "head_sha", "work")
        statement = statement.add_cte(
            jobs.insert()
            .from_select(
                [*columns, "state", "created"],
                select(
                    stored.c.delivery_id,
                    bindparam("prov", type_=String),
                    bindparam("repo", type_=String),
                    bindparam("num", type_=BigInteger),
                    bindparam("sha", type_=String),
                    bindparam("job", type_=Text),
                    literal(QUEUED),
                    bindparam("now", type_=Float),
                ),
            )
            .cte("queued")
        )
    return statement


_AT_ONCE = {
    None: _compiled(_at_once(supersede=False, queue=False)),
    WorkKind.REVIEW: _compiled(_at_once(supersede=True, queue=True)),
    WorkKind.CLOSE: _compiled(_at_once(supersede=True, queue=False)),
    WorkKind.COMMAND: _compiled(_at_once(supersede=False, queue=True)),
}
"""`record`'s statement on PostgreSQL, by the kind of work the delivery brings (None: none)."""


def _key(delivery: Delivery) -> str:
    key = f"{delivery.provider.value}:{delivery.delivery_id}"
    if len(key) <= 200:
        return key
    # Never cut an id short: two long ids sharing a prefix would pass for one delivery.
    return f"{delivery.provider.value}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _dump(work: Work) -> str:
    # Work is flat: reading its fields directly is several times cheaper than `asdict`'s deep copy.
    return json.dumps({name: getattr(work, name) for name in _WORK_FIELDS}, sort_keys=True)


_WORK_FIELDS = tuple(field.name for field in dataclasses.fields(Work))


def _load(text: str) -> Work:
    fields = json.loads(text)
    fields["kind"] = WorkKind(fields["kind"])
    return Work(**fields)
