"""The work queue: dedupe, one in flight per key, delays, backoff and jitter."""

from __future__ import annotations

import threading

from reconciler.workqueue import Backoff, WorkQueue, jittered


def test_a_key_added_twice_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", None]


def test_a_key_added_while_processing_comes_back_only_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("a")
    queue.add("a")
    # Not handed to a second worker while the first one holds it.
    assert queue.get(0) is None
    queue.done("a")
    assert queue.get(0) == "a"
    queue.done("a")
    assert queue.get(0) is None


def test_done_without_a_new_add_does_not_requeue() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.done("a")
    assert queue.get(0) is None


def test_add_after_waits_for_the_delay() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("later", 0.2)
    assert queue.get(0) is None
    assert queue.waiting() == 1
    assert queue.get(5) == "later"
    assert queue.waiting() == 0


def test_an_earlier_add_after_wins_and_the_later_one_is_dropped() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 60)
    queue.add_after("a", 0.05)
    assert queue.get(5) == "a"
    queue.done("a")
    assert queue.waiting() == 0


def test_backoff_doubles_from_the_minimum_up_to_the_cap_and_forget_resets_it() -> None:
    backoff: Backoff[str] = Backoff(min_delay=0.75, max_delay=5.0)
    assert [backoff.when("a") for _ in range(5)] == [0.75, 1.5, 3.0, 5.0, 5.0]
    assert backoff.failures("a") == 5
    assert backoff.when("b") == 0.75
    backoff.forget("a")
    assert backoff.when("a") == 0.75


def test_backoff_never_overflows() -> None:
    backoff: Backoff[str] = Backoff(min_delay=0.75, max_delay=900.0)
    for _ in range(2000):
        delay = backoff.when("a")
    assert delay == 900.0


def test_add_rate_limited_queues_after_the_backoff() -> None:
    queue: WorkQueue[str] = WorkQueue(Backoff(min_delay=0.05, max_delay=1.0))
    assert queue.add_rate_limited("a") == 0.05
    assert queue.get(5) == "a"
    queue.done("a")
    assert queue.add_rate_limited("a") == 0.1
    queue.forget("a")
    assert queue.add_rate_limited("a") == 0.05


def test_jitter_spreads_within_the_percentage() -> None:
    assert jittered(100.0, 5.0, rand=lambda: 0.0) == 95.0
    assert jittered(100.0, 5.0, rand=lambda: 1.0) == 105.0
    assert jittered(100.0, 5.0, rand=lambda: 0.5) == 100.0
    assert jittered(100.0, 0.0) == 100.0


def test_shut_down_wakes_a_blocked_get() -> None:
    queue: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    waiter = threading.Thread(target=lambda: got.append(queue.get()))
    waiter.start()
    queue.shut_down()
    waiter.join(60)
    assert got == [None]
    queue.add("a")
    assert queue.get(0) is None
