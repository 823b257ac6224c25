"""The durable job store: de-duplication, superseding, leases, exclusive claiming."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from app.store import JobStore
from core.vcs.webhooks import Delivery, Provider, Work, WorkKind


def delivery(
    delivery_id: str, sha: str, number: int = 1, kind: WorkKind = WorkKind.REVIEW
) -> Delivery:
    work = Work(kind, "acme/fleet", number, head_sha=sha if kind is WorkKind.REVIEW else "")
    return Delivery(Provider.GITHUB, delivery_id, "pull_request", work)


def test_a_newer_head_supersedes_queued_reviews(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    store.record(delivery("d1", "a" * 40))
    store.record(delivery("d2", "b" * 40))
    store.record(delivery("d3", "c" * 40, number=2))
    assert store.counts() == {"queued": 2, "superseded": 1}
    claimed = store.claim()
    assert claimed is not None
    assert claimed.work.head_sha == "b" * 40


def test_closing_drops_queued_work(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    store.record(delivery("d1", "a" * 40))
    store.record(delivery("d2", "", kind=WorkKind.CLOSE))
    assert store.claim() is None


def test_a_crashed_workers_job_is_claimed_again_after_its_lease(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite", lease=0.2)
    store.record(delivery("d1", "a" * 40))
    first = store.claim()
    assert first is not None
    assert store.claim() is None  # leased
    time.sleep(0.3)
    again = JobStore(tmp_path / "jobs.sqlite", lease=0.2).claim()  # a restarted process
    assert again is not None
    assert (again.id, again.attempts) == (first.id, 2)
    store.finish(again)
    assert store.claim() is None


def test_concurrent_claimers_never_share_a_job(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    for i in range(60):
        store.record(delivery(f"d{i}", f"{i:040x}", number=i))
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all() -> None:
        worker = JobStore(tmp_path / "jobs.sqlite")
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


def test_a_stale_job_knows_it(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    store.record(delivery("d1", "a" * 40))
    job = store.claim()
    assert job is not None
    assert not store.newer_head(job)
    store.record(delivery("d2", "b" * 40))
    assert store.newer_head(job)
