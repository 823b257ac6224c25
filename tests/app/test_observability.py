"""Metrics of jobs and code-host calls, and JSON log lines carrying delivery and job ids."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.hosts import code_hosts
from app.logs import JsonFormatter
from app.metrics import AppMetrics
from app.review import Reviewer, Worker
from app.settings import Settings
from app.store import JobStore
from core.vcs.webhooks import Delivery, Provider, Work, WorkKind
from devenv.github_api import FakeGitHub
from tests.app.conftest import Service, pull_request_event
from tests.fixtures.github import NO_WAIT, TOKEN


def command(delivery_id: str) -> Delivery:
    work = Work(WorkKind.COMMAND, "acme/fleet", 1, installation_id=7, command="help")
    return Delivery(Provider.GITHUB, delivery_id, "issue_comment", work)


def sample(metrics: AppMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_jobs_rate_limits_and_api_errors_are_measured(
    tmp_path: Path, github: FakeGitHub, job_database: Engine
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        github_url=github.base_url,
        github_token=TOKEN,
    )
    store = JobStore(job_database)
    metrics = AppMetrics()
    hosts = code_hosts(settings, metrics, retry=NO_WAIT)
    worker = Worker(store, Reviewer(settings, store, hosts, metrics), metrics)

    store.record(command("d1"))
    assert worker.run_once()
    assert len(github.comment_bodies("acme/fleet")) == 1
    done = {"kind": "command", "outcome": "done"}
    assert sample(metrics, "tidegate_job_duration_seconds_count", **done) == 1
    assert sample(metrics, "tidegate_vcs_rate_limit_remaining", provider="github") == 4999

    store.record(command("d2"))
    github.fail_next = [502] * 20
    assert worker.run_once()
    retried = {"kind": "command", "outcome": "queued"}
    assert sample(metrics, "tidegate_job_duration_seconds_count", **retried) == 1
    failed = {"provider": "github", "call": "create comment"}
    assert sample(metrics, "tidegate_vcs_api_errors_total", **failed) == 1


def test_log_lines_are_json_with_the_delivery_id(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tidegate")
    payload = pull_request_event("opened", number=1, head="a" * 40, clone_url="https://x/y.git")
    service.deliver("pull_request", payload, delivery="delivery-42")
    [record] = [r for r in caplog.records if r.getMessage() == "stored delivery"]
    line = json.loads(JsonFormatter().format(record))
    assert line["delivery"] == "delivery-42"
    assert line["event"] == "pull_request"
    assert (line["level"], line["logger"]) == ("info", "tidegate.app")
