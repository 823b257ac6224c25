"""Opening the job database: an embedded SQLite file, or a PostgreSQL server shared by replicas.

SQLite is opened so that every transaction takes the write lock at its start (`BEGIN
IMMEDIATE`): two processes then never both read a job as free, and no transaction has to be
retried halfway for a lock upgrade. Each process keeps one SQLite connection: its threads queue
for it in order instead of polling SQLite's lock with sleeps, which is what made acknowledgements
wait for seconds under load. Between processes (gunicorn's workers, a review worker) the
connection is handed over the same way: whoever checks it out first takes an exclusive `flock`
on a file beside the database (`FILE-writer`) and gives it back with the connection, so a
process waiting for another's transaction sleeps in the kernel and wakes the moment it ends,
instead of in SQLite's busy handler, which sleeps 1, 2, 5, 10 ... up to 100 ms between tries and
so held acknowledgements back for tens of milliseconds. The busy handler (30 s) remains only for
other programs that open the file. Writes are `synchronous=NORMAL` in WAL mode: a commit is durable
against a crash of the process (or of every process), not fsynced one by one; only a power loss
or kernel crash can roll back the last commits since the WAL was synced. That is durable enough
for deliveries: such a loss equals a delivery the provider failed to send (providers do not
promise delivery either), the pull request has no passing report, so the gate stays closed, and
the next push or `/tidegate preview` reviews it again. This module opens connections; it knows
no table.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.errors import InputError

__all__ = ["WRITER_SUFFIX", "open_database", "sqlite_url"]

WRITER_SUFFIX = "-writer"
"""The lock file beside an SQLite database that its connections are handed over with."""


def sqlite_url(path: Path) -> str:
    """The URL of an SQLite file."""
    return f"sqlite:///{path}"


def open_database(url: str, *, threads: int = 5) -> Engine:
    """An engine for `url` (`sqlite:///FILE` or `postgresql+psycopg://...`).

    On PostgreSQL the pool keeps a connection for each of the process's `threads` that use the
    database at once (and opens up to 10 more for a moment): were it smaller, every burst would
    open and close connections, each a new server process started within an acknowledgement.
    A connection is not pinged when it is checked out: that would be a second round trip for
    every acknowledgement. A connection the server dropped (a restart, a failover) fails its
    next statement instead; SQLAlchemy then discards every connection of the pool opened
    before, and the store stores a delivery again once (`JobStore.record`).

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
        return create_engine(parsed, pool_size=threads, max_overflow=10)
    raise InputError(
        f"TIDEGATE_DATABASE_URL: unsupported database {backend[:40]!r} (sqlite or postgresql)"
    )


def _sqlite(url: str) -> Engine:
    # One connection per process (see the module docstring); a thread waits up to 30 s for it.
    engine = create_engine(
        url, connect_args={"timeout": 30.0}, pool_size=1, max_overflow=0, pool_timeout=30.0
    )

    database = make_url(url).database
    handover = None
    if database and database != ":memory:" and not database.startswith("file:"):
        handover = _Handover(Path(database + WRITER_SUFFIX))

    @event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        # Let SQLAlchemy's `begin` event below open transactions, not the driver's own guesses.
        dbapi.isolation_level = None
        # A new connection runs before the pool's checkout takes the handover, and switching to
        # WAL needs the write lock: SQLite refuses it at once ("database is locked", without
        # waiting) while another connection is mid-write, so it too waits for the handover.
        if handover is not None:
            handover.take()
        try:
            dbapi.execute("PRAGMA journal_mode=WAL")
            dbapi.execute("PRAGMA synchronous=NORMAL")
        finally:
            if handover is not None:
                handover.give()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    if handover is not None:
        event.listen(engine, "checkout", lambda *_: handover.take())
        event.listen(engine, "checkin", lambda *_: handover.give())
    return engine


class _Handover:
    """An exclusive `flock` held while this process has its SQLite connection checked out.

    The pool's single connection already lets one thread of the process in at a time; the lock
    extends that queue across processes. The file is opened anew in each process (a descriptor
    inherited over a fork would share its lock with the parent).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = -1
        self._pid = 0
        self._mutex = threading.Lock()

    def take(self) -> None:
        """Wait (in the kernel, not polling) until no other process holds the database."""
        with self._mutex:
            if self._pid != os.getpid():
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._pid = os.getpid()
            fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX)

    def give(self) -> None:
        """Let the next process in."""
        if self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
