"""`tidegate serve`: run the pull-request app (webhooks) and its review worker.

`--worker-only` and `--web-only` split the two for several replicas; without either, one process
serves webhooks on the development server and runs a worker thread (local runs only: production
serves `app.wsgi:application` under gunicorn and runs `tidegate serve --worker-only` beside it).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import Any

from app import settings as app_settings
from app.review import Credentials, Reviewer, Worker
from app.store import Job, JobStore
from app.web import create_app
from core.errors import InputError
from core.vcs.github import GitHubAuth, GitHubHost, connect
from core.vcs.gitlab import GitLabHost
from core.vcs.gitlab import connect as gitlab_connect
from core.vcs.port import CodeHost
from core.vcs.webhooks import Provider

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `serve` subcommand."""
    lines = "\n".join(f"  {name}: {text}" for name, text in app_settings.ENVIRONMENT.items())
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the GitHub/GitLab pull-request app",
        description="Receive webhooks, preview every pull request in the sandbox and publish one "
        "comment and one check or commit status. Configured by environment variables:\n" + lines,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--worker-only", action="store_true", help="run only the review worker")
    mode.add_argument("--web-only", action="store_true", help="serve only the webhooks")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = app_settings.from_environment()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.data_dir / "jobs.sqlite")
    if not args.web_only:
        worker = Worker(store, Reviewer(settings, store, _code_hosts(settings)))
        thread = threading.Thread(target=_work, args=(worker,), daemon=True)
        thread.start()
        if args.worker_only:
            thread.join()
            return 0
    create_app(settings, store).run(host=args.host, port=args.port)
    return 0


def _work(worker: Worker) -> None:
    while True:
        if not worker.run_once():
            time.sleep(1.0)


def _code_hosts(settings: app_settings.Settings) -> Any:
    if not (settings.github_token or settings.github_app_id or settings.gitlab_token):
        raise InputError(
            "set TIDEGATE_GITHUB_TOKEN, TIDEGATE_GITHUB_APP_ID or TIDEGATE_GITLAB_TOKEN"
        )

    def hosts(job: Job) -> tuple[CodeHost, Credentials]:
        if job.provider is Provider.GITLAB:
            lab = gitlab_connect(settings.gitlab_url, settings.gitlab_token)
            # GitLab takes any user name with a project or group token over HTTPS.
            return GitLabHost(lab, job.work.project_id), Credentials(
                "oauth2", settings.gitlab_token
            )
        auth = GitHubAuth(
            token=settings.github_token,
            app_id=settings.github_app_id,
            private_key=settings.github_private_key,
            installation_id=job.work.installation_id,
        )
        client, credentials = connect(settings.github_url, auth)
        token = getattr(credentials, "token", settings.github_token)
        host = GitHubHost(client, job.work.repository, checks=auth.app)
        return host, Credentials(settings.git_user, str(token))

    return hosts
