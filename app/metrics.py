"""The service's Prometheus metrics: deliveries, queue, job durations, code-host API health.

Under gunicorn each worker process counts for itself and `/metrics` must show the sum, so the
serving command switches prometheus-client to its multi-process mode (`enable_multiprocess`)
before any worker builds an `AppMetrics`; `/metrics` then merges every process's files. The
queue's depth and jobs by state are read from the job database at scrape time, so every replica
reports the same, true numbers. Label values are bounded: events and calls are our own names,
never a string from a payload.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.store import JobStore

__all__ = ["CONTENT_TYPE", "AppMetrics", "enable_multiprocess"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: Path) -> None:
    """Count in files under `directory` (emptied first), merged at scrape time.

    Call before forking the worker processes and before building any `AppMetrics`.
    """
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[_ENV] = str(directory)
    # prometheus-client picks the value store when it is imported; pick again now the
    # directory is known (metrics built from here on write to the shared files).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


class AppMetrics:
    """The metrics one process updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        """This process's metrics (under gunicorn, /metrics reads every process's files)."""
        registry = self.registry
        self.deliveries = Counter(
            "tidegate_deliveries_total",
            "Webhook deliveries by provider, event and result",
            ["provider", "event", "result"],
            registry=registry,
        )
        self.job_duration = Histogram(
            "tidegate_job_duration_seconds",
            "Time to run one job attempt, by kind and outcome",
            ["kind", "outcome"],
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=registry,
        )
        self.vcs_errors = Counter(
            "tidegate_vcs_api_errors_total",
            "Code-host API calls that failed after retries, by provider and call",
            ["provider", "call"],
            registry=registry,
        )
        self.rate_limit = Gauge(
            "tidegate_vcs_rate_limit_remaining",
            "API requests left in the code host's rate-limit window, as last answered",
            ["provider"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )

    def exposition(self, store: JobStore) -> bytes:
        """Every process's metrics and the queue's, in Prometheus's text format."""
        if os.environ.get(_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        return generate_latest(registry) + generate_latest(_Queue(store))


class _Queue(CollectorRegistry):
    """A registry of one collector: the job table as it is now."""

    def __init__(self, store: JobStore) -> None:
        super().__init__(auto_describe=False)
        self.register(_QueueCollector(store))


class _QueueCollector(Collector):
    def __init__(self, store: JobStore) -> None:
        self._store = store

    def collect(self) -> Iterator[Any]:
        counts = self._store.counts()
        depth = GaugeMetricFamily("tidegate_queue_depth", "Jobs queued or running")
        depth.add_metric([], counts.get("queued", 0) + counts.get("running", 0))
        yield depth
        jobs = GaugeMetricFamily("tidegate_jobs", "Jobs in the database by state", labels=["state"])
        for state in ("queued", "running", "done", "superseded", "error"):
            jobs.add_metric([state], counts.get(state, 0))
        yield jobs
