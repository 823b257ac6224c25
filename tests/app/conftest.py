"""Fixtures: the service wired to the fake GitHub, the local git server and the pinned tools."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.database import open_database
from app.engine import PreviewEngine
from app.migrate import upgrade
from app.review import Credentials, Reviewer, Worker
from app.settings import Settings, job_database_url
from app.store import Job, JobStore
from app.web import create_app
from core.vcs.github import GitHubAuth, GitHubHost, connect
from core.vcs.gitlab import GitLabHost
from core.vcs.gitlab import connect as gitlab_connect
from core.vcs.port import CodeHost
from core.vcs.webhooks import Provider
from devenv import github_webhook
from devenv.github_api import FakeGitHub
from tests.fixtures.github import APP_ID, GITLAB_TOKEN, NO_WAIT
from tests.fixtures.gitserver import GIT_PASSWORD, GIT_USER
from tests.vcs.gitlab_fake import FakeGitLab

WEBHOOK_SECRET = b"webhook s3cret"


@dataclass
class Service:
    """The app, its store and one worker, as a test drives them."""

    client: FlaskClient
    store: JobStore
    worker: Worker
    settings: Settings

    def deliver(
        self, event: str, payload: Any, *, delivery: str = "", secret: bytes = WEBHOOK_SECRET
    ) -> Any:
        body = json.dumps(payload).encode()
        headers = github_webhook.signed_headers(secret, body, event=event, delivery=delivery)
        return self.client.post(
            "/webhooks/github",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        )

    def deliver_gitlab(self, event: str, payload: Any, *, token: bytes = WEBHOOK_SECRET) -> Any:
        return self.client.post(
            "/webhooks/gitlab",
            data=json.dumps(payload).encode(),
            headers={
                "X-Gitlab-Event": event,
                "X-Gitlab-Event-UUID": str(uuid.uuid4()),
                "X-Gitlab-Token": token.decode(),
                "Content-Type": "application/json",
            },
        )

    def drain(self) -> int:
        ran = 0
        while self.worker.run_once():
            ran += 1
        return ran


ServiceFactory = Callable[..., Service]


@pytest.fixture
def service_factory(
    tmp_path: Path,
    github: FakeGitHub,
    gitlab_fake: FakeGitLab,
    app_key: tuple[str, str],
    kustomize_bin: Path,
    helm_bin: Path,
) -> ServiceFactory:
    """Make the service in GitHub App mode; keyword arguments replace settings, `engine` the
    preview engine."""

    def make(*, engine: PreviewEngine | None = None, **changes: Any) -> Service:
        settings = Settings(
            data_dir=tmp_path / "data",
            github_url=github.base_url,
            github_app_id=APP_ID,
            github_private_key=app_key[0],
            github_webhook_secret=WEBHOOK_SECRET,
            gitlab_webhook_secret=WEBHOOK_SECRET,
            kustomize=str(kustomize_bin),
            helm=str(helm_bin),
        )
        settings = dataclasses.replace(settings, **changes)
        settings.data_dir.mkdir(exist_ok=True)
        engine_db = open_database(job_database_url(settings))
        upgrade(engine_db)
        store = JobStore(engine_db)

        def hosts(job: Job) -> tuple[CodeHost, Credentials]:
            if job.provider is Provider.GITLAB:
                client = gitlab_connect(gitlab_fake.url, GITLAB_TOKEN)
                return GitLabHost(client, job.work.project_id, retry=NO_WAIT), Credentials(
                    GIT_USER, GIT_PASSWORD
                )
            auth = GitHubAuth(
                app_id=APP_ID, private_key=app_key[0], installation_id=job.work.installation_id
            )
            client, _ = connect(github.base_url, auth)
            host = GitHubHost(client, job.work.repository, checks=True, retry=NO_WAIT)
            return host, Credentials(GIT_USER, GIT_PASSWORD)

        worker = Worker(store, Reviewer(settings, store, hosts, engine=engine))
        return Service(create_app(settings, store).test_client(), store, worker, settings)

    return make


@pytest.fixture
def service(service_factory: ServiceFactory) -> Service:
    """The service in GitHub App mode."""
    return service_factory()


PullRequestEvent = Callable[..., dict[str, Any]]


def pull_request_event(
    action: str,
    *,
    number: int,
    head: str,
    clone_url: str,
    repository: str = "acme/fleet",
    head_repository: str = "acme/fleet",
    base: str = "main",
) -> dict[str, Any]:
    """A `pull_request` payload with the fields GitHub sends and Tidegate reads."""
    return github_webhook.pull_request_event(
        action,
        number=number,
        head=head,
        head_ref="feature",
        base="0" * 40,
        base_ref=base,
        repository=repository,
        head_repository=head_repository,
        clone_url=clone_url,
        installation_id=7,
    )
