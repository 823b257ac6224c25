"""The durable job store on SQLite and on a real PostgreSQL server: de-duplication, superseding,
leases, the attempt cap, fencing and exclusive claiming."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from app.database import open_database
from app.store import JobStore
from core.vcs.webhooks import Delivery, Provider, Work, WorkKind


class Clock:
    """A clock the test moves by hand, so leases expire without waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def delivery(
    delivery_id: str, sha: str, number: int = 1, kind: WorkKind = WorkKind.REVIEW
) -> Delivery:
    work = Work(kind, "acme/fleet", number, head_sha=sha if kind is WorkKind.REVIEW else "")
    return Delivery(Provider.GITHUB, delivery_id, "pull_request", work)


def test_a_redelivered_id_is_stored_once(job_database: Engine) -> None:
    store = JobStore(job_database)
    assert store.record(delivery("d1", "a" * 40))
    assert not store.record(delivery("d1", "a" * 40))
    assert (store.deliveries(), store.counts()) == (1, {"queued": 1})


def test_long_delivery_ids_sharing_a_prefix_stay_distinct(job_database: Engine) -> None:
    store = JobStore(job_database)
    assert store.record(delivery("x" * 300 + "1", "a" * 40))
    assert store.record(delivery("x" * 300 + "2", "b" * 40, number=2))
    assert store.deliveries() == 2


def test_a_newer_head_supersedes_queued_reviews(job_database: Engine) -> None:
    store = JobStore(job_database)
    store.record(delivery("d1", "a" * 40))
    store.record(delivery("d2", "b" * 40))
    store.record(delivery("d3", "c" * 40, number=2))
    assert store.counts() == {"queued": 2, "superseded": 1}
    claimed = store.claim()
    assert claimed is not None
    assert claimed.work.head_sha == "b" * 40


def test_closing_drops_queued_work(job_database: Engine) -> None:
    store = JobStore(job_database)
    store.record(delivery("d1", "a" * 40))
    store.record(delivery("d2", "", kind=WorkKind.CLOSE))
    assert store.claim() is None


def test_a_crashed_workers_job_is_claimed_again_after_its_lease(
    job_database: Engine, database_url: str
) -> None:
    clock = Clock()
    store = JobStore(job_database, lease=60, clock=clock)
    store.record(delivery("d1", "a" * 40))
    first = store.claim()
    assert first is not None
    assert store.claim() is None  # leased
    clock.now += 61
    restarted = JobStore(open_database(database_url), lease=60, clock=clock)  # a new process
    again = restarted.claim()
    assert again is not None
    assert (again.id, again.attempts) == (first.id, 2)
    assert not store.finish(first)  # the first attempt lost its lease: its word counts no more
    assert restarted.finish(again)
    assert store.claim() is None
    assert store.counts() == {"done": 1}


def test_a_job_that_keeps_crashing_ends_in_error_with_a_message(job_database: Engine) -> None:
    clock = Clock()
    store = JobStore(job_database, lease=60, max_attempts=2, clock=clock)
    store.record(delivery("d1", "a" * 40))
    job = None
    for _ in range(2):
        job = store.claim()
        assert job is not None
        clock.now += 61
    assert job is not None
    assert store.claim() is None
    assert store.counts() == {"error": 1}
    assert store.message(job.id) == "gave up after 2 attempts"


def test_a_failed_attempt_is_retried_after_a_back_off_then_given_up(
    job_database: Engine,
) -> None:
    clock = Clock()
    store = JobStore(job_database, max_attempts=2, backoff=30, clock=clock)
    store.record(delivery("d1", "a" * 40))
    first = store.claim()
    assert first is not None
    assert store.retry(first, "GitHub answered 502") == "queued"
    assert store.claim() is None  # backing off
    clock.now += 31
    second = store.claim()
    assert second is not None
    assert second.attempts == 2
    assert store.retry(second, "GitHub answered 502") == "error"
    assert store.message(second.id) == "gave up after 2 attempts: GitHub answered 502"
    assert store.depth() == 0


def test_concurrent_claimers_never_share_a_job(job_database: Engine, database_url: str) -> None:
    store = JobStore(job_database)
    for i in range(60):
        store.record(delivery(f"d{i}", f"{i:040x}", number=i))
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all() -> None:
        worker = JobStore(open_database(database_url))
        while (job := worker.claim()) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 60


def test_a_stale_job_knows_it(job_database: Engine) -> None:
    store = JobStore(job_database)
    store.record(delivery("d1", "a" * 40))
    job = store.claim()
    assert job is not None
    assert not store.newer_head(job)
    store.record(delivery("d2", "b" * 40))
    assert store.newer_head(job)
