"""What keeps acknowledgements cheap and prompt: SQLite's settings, its one connection per
process and its hand-over between processes, a gunicorn worker's app frozen out of the garbage
collector and the switch interval it is given, PostgreSQL's one statement with no ping
before it, and review threads (and the renders they start) running at a lower CPU priority than
the webhook threads."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from psycopg import pq
from sqlalchemy import event, text

from app.database import open_database, sqlite_url
from app.migrate import upgrade
from app.review import REVIEW_NICE, Worker, yield_cpu
from app.server import GunicornServer, HeartbeatWorker
from app.store import JobStore
from core.vcs.webhooks import Delivery, Provider, Work, WorkKind


def test_sqlite_commits_in_wal_mode_without_an_fsync_per_commit(tmp_path: Path) -> None:
    engine = open_database(sqlite_url(tmp_path / "jobs.sqlite"))
    with engine.connect() as db:
        assert db.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_threads_of_one_process_share_one_sqlite_connection(tmp_path: Path) -> None:
    engine = open_database(sqlite_url(tmp_path / "jobs.sqlite"))
    upgrade(engine)
    engine.dispose()
    opened: list[Any] = []
    event.listen(engine, "connect", lambda dbapi, _record: opened.append(dbapi))
    store = JobStore(engine)

    def deliver(thread: int) -> None:
        for number in range(10):
            work = Work(WorkKind.REVIEW, "acme/fleet", thread * 100 + number, head_sha="a" * 40)
            store.record(Delivery(Provider.GITHUB, f"{thread}-{number}", "pull_request", work))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.deliveries() == 160
    assert len(opened) == 1


def test_a_review_thread_and_its_children_run_below_the_webhook_threads() -> None:
    seen: dict[str, int] = {}

    def review_thread() -> None:
        yield_cpu()
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
            capture_output=True,
            text=True,
            check=True,
        )
        seen["child"] = int(child.stdout)

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=review_thread)
    thread.start()
    thread.join()
    assert seen == {"thread": max(before, REVIEW_NICE), "child": max(before, REVIEW_NICE)}
    # The calling (webhook) thread keeps its priority.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_the_worker_loop_lowers_its_own_priority(tmp_path: Path) -> None:
    engine = open_database(sqlite_url(tmp_path / "jobs.sqlite"))
    upgrade(engine)
    store = JobStore(engine)
    worker = Worker(store, reviewer=None)  # type: ignore[arg-type]  # the queue stays empty
    stop = threading.Event()
    lowered = threading.Event()
    real_claim = store.claim

    def claim() -> Any:
        # The first claim happens inside the loop, after the priority was lowered.
        if os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) >= REVIEW_NICE:
            lowered.set()
        stop.set()
        return real_claim()

    store.claim = claim  # type: ignore[method-assign]
    thread = threading.Thread(target=worker.run_forever, args=(stop,), kwargs={"idle": 0.01})
    thread.start()
    thread.join()
    assert lowered.is_set()


_WRITER = """
import sys
from sqlalchemy import event
from app.database import open_database
from app.store import JobStore
from core.vcs.webhooks import Delivery, Provider, Work, WorkKind

engine = open_database(sys.argv[1])


@event.listens_for(engine, "connect")
def _no_busy_handler(dbapi, _record):
    # Fail instead of sleeping whenever SQLite finds the write lock taken by another process.
    dbapi.execute("PRAGMA busy_timeout=0")


store = JobStore(engine)
for number in range(int(sys.argv[3])):
    work = Work(WorkKind.REVIEW, "acme/fleet", number, head_sha="a" * 40)
    store.record(Delivery(Provider.GITHUB, f"{sys.argv[2]}-{number}", "pull_request", work))
"""


def test_processes_hand_the_sqlite_database_over_without_its_busy_handler(tmp_path: Path) -> None:
    # Several processes storing deliveries at once never find SQLite's write lock taken: they
    # queue on the lock file beside it, so none ever sleeps in SQLite's busy handler (here
    # switched off, so that finding the lock taken would fail the write).
    url = sqlite_url(tmp_path / "jobs.sqlite")
    engine = open_database(url)
    upgrade(engine)
    engine.dispose()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, str(n), "150"],
            cwd=Path(__file__).resolve().parents[2],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    errors = [writer.communicate()[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0, 0, 0], errors
    assert JobStore(open_database(url)).deliveries() == 600
    assert (tmp_path / "jobs.sqlite-writer").exists()


def test_a_worker_freezes_its_app_out_of_the_garbage_collector() -> None:
    class App:
        """Stands for the WSGI app and everything built with it."""

    built = App()
    switch = sys.getswitchinterval()
    try:
        app = GunicornServer(lambda: built, {}).load()
        # Frozen objects sit in no generation, so no later collection walks them.
        assert app is built
        assert not any(found is built for g in range(3) for found in gc.get_objects(g))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        sys.setswitchinterval(switch)


def test_a_worker_applies_the_switch_interval_it_is_given_before_building_its_app() -> None:
    before = sys.getswitchinterval()
    seen: list[float] = []
    try:
        sys.setswitchinterval(0.005)
        GunicornServer(lambda: seen.append(sys.getswitchinterval()), {}).load()
        GunicornServer(
            lambda: seen.append(sys.getswitchinterval()), {}, switch_interval=0.001
        ).load()
        # Set before the app is built, so the review thread it starts runs with it too.
        assert seen == [0.005, 0.001]
    finally:
        sys.setswitchinterval(before)
        gc.unfreeze()


def test_postgresql_stores_a_delivery_in_one_prepared_statement_without_begin_or_commit(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = open_database(postgres_url)
    upgrade(engine)
    store = JobStore(engine)
    work = Work(WorkKind.REVIEW, "acme/fleet", 7, head_sha="a" * 40)
    assert store.record(Delivery(Provider.GITHUB, "d-0", "pull_request", work))
    # What the pooled connection sends from now on, as libpq writes it on the wire.
    pooled = engine.raw_connection()
    wire = pooled.driver_connection.pgconn  # type: ignore[union-attr]
    pooled.close()
    with (tmp_path / "trace").open("w+b") as trace:
        wire.trace(trace.fileno())
        wire.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        assert store.record(Delivery(Provider.GITHUB, "d-1", "pull_request", work))
        assert not store.record(Delivery(Provider.GITHUB, "d-1", "pull_request", work))
        wire.untrace()
        trace.seek(0)
        sent = [
            line.split("\t")[2:4]
            for line in trace.read().decode(errors="replace").splitlines()
            if line.startswith("F\t")
        ]
    # Each delivery: one round trip (one Sync) binding the statement prepared on the server at
    # its first use, no ping, no BEGIN, no COMMIT (autocommit: the statement is the transaction).
    assert [message for message, *_ in sent] == ["Bind", "Describe", "Execute", "Sync"] * 2
    binds = [arguments for message, *arguments in sent if message == "Bind"]
    assert all(arguments[0].startswith(' "" "_pg3_') for arguments in binds), binds
    # Committed: another connection sees the delivery and its job.
    assert JobStore(open_database(postgres_url)).counts() == {"queued": 1, "superseded": 1}
    engine.dispose()


def test_postgresql_stores_a_delivery_again_when_the_server_dropped_the_connection(
    postgres_url: str,
) -> None:
    engine = open_database(postgres_url)
    upgrade(engine)
    store = JobStore(engine)
    work = Work(WorkKind.REVIEW, "acme/fleet", 7, head_sha="a" * 40)
    assert store.record(Delivery(Provider.GITHUB, "d-1", "pull_request", work))
    # The server ends every session of the pool (as a restart or a failover would).
    admin = open_database(postgres_url)
    with admin.connect() as db:
        ended = db.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert ended >= 1
    assert store.record(Delivery(Provider.GITHUB, "d-2", "pull_request", work))
    assert not store.record(Delivery(Provider.GITHUB, "d-2", "pull_request", work))
    assert store.deliveries() == 2
    engine.dispose()
    admin.dispose()


def test_postgresql_keeps_a_connection_for_each_thread(postgres_url: str) -> None:
    # Eight threads holding a connection at once, three times over: the pool keeps the eight
    # it opened instead of closing the ones above a smaller size and opening them again.
    engine = open_database(postgres_url, threads=8)
    opened: list[object] = []
    event.listen(engine, "connect", lambda dbapi, _record: opened.append(dbapi))
    together = threading.Barrier(8)

    def hold() -> None:
        for _ in range(3):
            with engine.connect() as db:
                together.wait(timeout=60)
                db.execute(text("SELECT 1"))
            together.wait(timeout=60)

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 8
    engine.dispose()


def test_a_worker_touches_its_heartbeat_at_most_once_a_second() -> None:
    touched: list[float] = []
    now = [0.0]

    class Heartbeat:
        def notify(self) -> None:
            touched.append(now[0])

    worker = HeartbeatWorker.__new__(HeartbeatWorker)
    worker.tmp = Heartbeat()
    worker.clock = lambda: now[0]
    # gunicorn's threaded worker notifies on every turn of its loop: a request per turn here.
    for moment in (10.0, 10.2, 10.9, 11.0, 11.5, 13.7, 13.8):
        now[0] = moment
        worker.notify()
    assert touched == [10.0, 11.0, 13.7]
