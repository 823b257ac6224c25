"""Delivering notifications from a bounded queue, with retries, never blocking the caller.

`Dispatcher.submit` only enqueues: when the queue is full the notification is dropped and
counted, so a receiver outage never slows reconciling. One worker thread sends each request
through `core.fetch` (allow-listed hosts; loopback only when the policy says so), retrying
unavailable receivers (connection errors, timeouts, HTTP 408/429/5xx) with exponential backoff up
to `attempts`; a refused or rejected request is not retried. Logs name the Provider and a short
reason, never the address, a header or the body, which may hold credentials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import TidegateError
from core.fetch import FetchError, FetchPolicy, fetch
from core.vcs.port import VcsError
from reconciler.notification.providers import OutboundRequest

__all__ = ["Dispatcher", "Outcome"]

_LOG = logging.getLogger(__name__)
_MAX_RESPONSE = 64 * 1024


@dataclass
class Outcome:
    """Counts since start, for tests and metrics."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0


@dataclass(frozen=True)
class Job:
    """A delivery made by an adapter (a commit status), which retries on its own."""

    provider: str
    """`namespace/name`, for logs."""
    run: Callable[[], None]


class Dispatcher:
    """A bounded queue and one sender thread."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        capacity: int = 1000,
        attempts: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._policy = policy
        self._queue: queue.Queue[OutboundRequest | Job | None] = queue.Queue(maxsize=capacity)
        self._attempts = attempts
        self._backoff = backoff
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self.outcome = Outcome()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def policy(self) -> FetchPolicy:
        """Where notifications may go."""
        return self._policy

    def start(self) -> None:
        """Start the sender thread."""
        self._thread = threading.Thread(target=self._run, name="notifications", daemon=True)
        self._thread.start()

    def submit(self, request: OutboundRequest | Job) -> bool:
        """Enqueue without waiting; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            with self._lock:
                self.outcome.dropped += 1
            _LOG.warning("notification for provider %s dropped: queue full", request.provider)
            return False
        return True

    def drain(self) -> None:
        """Wait until every queued request was sent or given up."""
        self._queue.join()

    def stop(self) -> None:
        """Stop the sender after the request in flight; queued requests are abandoned."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            request = self._queue.get()
            try:
                if isinstance(request, Job):
                    self._run_job(request)
                elif request is not None:
                    self._deliver(request)
            finally:
                self._queue.task_done()

    def _run_job(self, job: Job) -> None:
        with self._lock:
            self.outcome.attempts += 1
        try:
            job.run()
        except (TidegateError, VcsError) as exc:
            with self._lock:
                self.outcome.failed += 1
            _LOG.warning("notification for provider %s failed: %s", job.provider, exc)
            return
        with self._lock:
            self.outcome.sent += 1

    def _deliver(self, request: OutboundRequest) -> None:
        policy = dataclasses.replace(
            self._policy, total_timeout=min(self._policy.total_timeout, request.timeout)
        )
        for attempt in range(self._attempts):
            with self._lock:
                self.outcome.attempts += 1
            try:
                response = fetch(
                    request.url,
                    policy=policy,
                    max_bytes=_MAX_RESPONSE,
                    headers=request.headers,
                    method="POST",
                    data=request.body,
                )
            except FetchError as exc:
                if exc.unavailable and attempt + 1 < self._attempts and not self._stop.is_set():
                    self._sleep(self._backoff * 2**attempt)
                    continue
                with self._lock:
                    self.outcome.failed += 1
                _LOG.warning(
                    "notification for provider %s failed: %s", request.provider, exc.reason
                )
                return
            refusal = _slack_refusal(response.body) if request.slack_api else ""
            with self._lock:
                if refusal:
                    self.outcome.failed += 1
                else:
                    self.outcome.sent += 1
            if refusal:
                _LOG.warning("notification for provider %s failed: %s", request.provider, refusal)
            return


def _slack_refusal(body: bytes) -> str:
    """Why Slack's Web API refused a message ("" when it took it); it always answers 200."""
    try:
        answer = json.loads(body)
    except ValueError:
        return "Slack answered with a body that is not JSON"
    if isinstance(answer, dict) and answer.get("ok") is True:
        return ""
    error = answer.get("error") if isinstance(answer, dict) else None
    code = error if isinstance(error, str) and error.isidentifier() else "unknown"
    return f"Slack responded with error: {code[:64]}"
