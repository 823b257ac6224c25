"""Real worker processes on PostgreSQL: a worker killed mid-job, and two replicas sharing a queue.

The workers are `tidegate serve --worker-only` processes reaching the fake GitHub and the local
git server over loopback and rendering with the pinned tools in the sandbox, as in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.database import open_database
from app.migrate import upgrade
from app.schema import jobs
from app.store import JobStore
from core.vcs.webhooks import Delivery, Provider, Work, WorkKind
from devenv.github_api import FakeGitHub
from devenv.gitserver import GitServer
from tests.app.test_review_github import checks_of, fleet, push_change
from tests.fixtures.github import APP_ID
from tests.fixtures.gitserver import RemoteRepo

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- tidegate:preview part 1 -->"


class Workers:
    """Starts `tidegate serve --worker-only` processes; kills what is left at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, **settings: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--worker-only"],
                cwd=ROOT,
                env={**self.env, **settings},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append((process, log))
        return process

    def finished_jobs(self, index: int) -> set[int]:
        found = set()
        for line in self.started[index][1].read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record["message"] == "job finished" and record.get("state") == "done":
                    found.add(int(record["job"]))
        return found

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


INSTALLATION_TOKEN = "ghs_installation-token-for-git"


@pytest.fixture
def app_remote(tmp_path: Path, github: FakeGitHub) -> Iterator[RemoteRepo]:
    """A repository whose git server takes the App's installation token, as GitHub does."""
    github.fixed_token = INSTALLATION_TOKEN
    users = {"x-access-token": INSTALLATION_TOKEN}
    with GitServer(tmp_path / "git", users, private=True) as server:
        server.create_repo("fleet")
        yield RemoteRepo(
            name="fleet",
            path=server.root / "fleet.git",
            url=server.repo_url("fleet"),
            push_url=server.repo_url("fleet", "x-access-token"),
        )


@pytest.fixture
def workers(
    tmp_path: Path,
    github: FakeGitHub,
    app_key: tuple[str, str],
    kustomize_bin: Path,
    helm_bin: Path,
    postgres_url: str,
) -> Iterator[Workers]:
    env = {
        **os.environ,
        "TIDEGATE_DATA_DIR": str(tmp_path / "data"),
        "TIDEGATE_DATABASE_URL": postgres_url,
        "TIDEGATE_GITHUB_URL": github.base_url,
        "TIDEGATE_GITHUB_APP_ID": APP_ID,
        "TIDEGATE_GITHUB_PRIVATE_KEY": app_key[0],
        "TIDEGATE_KUSTOMIZE": str(kustomize_bin),
        "TIDEGATE_HELM": str(helm_bin),
    }
    found = Workers(env, tmp_path)
    yield found
    found.stop_all()


def review(number: int, sha: str, clone_url: str) -> Delivery:
    work = Work(
        WorkKind.REVIEW,
        "acme/fleet",
        number,
        head_sha=sha,
        base_ref="main",
        clone_url=clone_url,
        installation_id=7,
    )
    return Delivery(Provider.GITHUB, f"delivery-{number}", "pull_request", work)


def wait_until_done(store: JobStore, count: int) -> None:
    deadline = time.monotonic() + 600
    while store.counts().get("done", 0) < count:
        assert time.monotonic() < deadline, f"jobs did not finish: {store.counts()}"
        time.sleep(0.5)


def test_a_worker_killed_mid_job_is_finished_after_restart_with_one_comment_and_check(
    tmp_path: Path,
    github: FakeGitHub,
    app_remote: RemoteRepo,
    postgres_url: str,
    workers: Workers,
) -> None:
    work = fleet(tmp_path, app_remote)
    sha = push_change(work, app_remote, "      mode: green")
    github.add_pull("acme/fleet", 5, head=sha)
    engine = open_database(postgres_url)
    upgrade(engine)
    store = JobStore(engine)
    store.record(review(5, sha, app_remote.url))
    # The worker dies while its comment is being created: GitHub has the comment, the job does
    # not know it. The restarted worker must edit that comment, not add a second one.
    gate = github.hold("POST", "/repos/acme/fleet/issues/5/comments")
    first = workers.start(TIDEGATE_JOB_LEASE="2")
    assert gate.reached.wait(600), "the worker never published"
    first.send_signal(signal.SIGKILL)
    first.wait()
    gate.release.set()
    assert store.counts() == {"running": 1}

    workers.start(TIDEGATE_JOB_LEASE="2")
    wait_until_done(store, 1)

    [body] = github.comment_bodies("acme/fleet")
    assert MARKER in body
    assert "green" in body
    [check] = checks_of(github, sha)
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    with engine.connect() as db:
        assert db.execute(select(jobs.c.attempts)).scalar_one() == 2


def test_two_replicas_never_run_the_same_job(
    tmp_path: Path,
    github: FakeGitHub,
    app_remote: RemoteRepo,
    postgres_url: str,
    workers: Workers,
) -> None:
    work = fleet(tmp_path, app_remote)
    engine = open_database(postgres_url)
    upgrade(engine)
    store = JobStore(engine)
    heads = {}
    for number in range(1, 5):
        heads[number] = push_change(work, app_remote, f"      mode: colour-{number}")
        github.add_pull("acme/fleet", number, head=heads[number])
        store.record(review(number, heads[number], app_remote.url))
    workers.start()
    workers.start()
    wait_until_done(store, 4)

    with engine.connect() as db:
        assert db.execute(select(jobs.c.attempts)).scalars().all() == [1, 1, 1, 1]
    one, two = workers.finished_jobs(0), workers.finished_jobs(1)
    assert one.isdisjoint(two)
    assert len(one | two) == 4
    bodies = github.comment_bodies("acme/fleet")
    assert len(bodies) == 4
    for number, sha in heads.items():
        assert [c["conclusion"] for c in checks_of(github, sha)] == ["success"]
        assert sum(f"colour-{number}" in body for body in bodies) == 1
