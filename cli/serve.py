"""`tidegate serve`: run the pull-request app (webhooks) and its review workers.

By default the webhooks are served by gunicorn, and each of its worker processes also runs one
review worker thread. `--web-only` serves webhooks without reviewing, `--worker-only` reviews
without serving (split roles for several replicas on PostgreSQL), `--dev` uses Flask's
development server instead of gunicorn (local runs only), and `--migrate-only` brings the job
database's schema up to date and exits. Every mode migrates first; migrating is idempotent and
safe from replicas starting together.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from app import settings as app_settings
from app.database import open_database
from app.logs import configure as configure_logs
from app.migrate import upgrade
from app.review import Credentials, Reviewer, Worker
from app.server import GunicornServer
from app.store import Job, JobStore
from app.web import create_app
from core.errors import InputError
from core.vcs.github import GitHubAuth, GitHubHost, connect
from core.vcs.gitlab import GitLabHost
from core.vcs.gitlab import connect as gitlab_connect
from core.vcs.port import CodeHost
from core.vcs.webhooks import Provider

__all__ = ["register"]

_log = logging.getLogger("tidegate.serve")


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
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn worker processes (default 2)"
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="request threads per gunicorn worker (default 8)"
    )
    parser.add_argument(
        "--dev", action="store_true", help="Flask's development server instead of gunicorn"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--worker-only", action="store_true", help="run only the review worker")
    mode.add_argument("--web-only", action="store_true", help="serve only the webhooks")
    mode.add_argument(
        "--migrate-only", action="store_true", help="migrate the job database and exit"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    configure_logs()
    settings = app_settings.from_environment()
    if args.workers < 1 or args.threads < 1:
        raise InputError("--workers and --threads must be at least 1")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = app_settings.job_database_url(settings)
    engine = open_database(url)
    upgrade(engine)
    engine.dispose()  # gunicorn forks next: no connection may cross the fork
    if args.migrate_only:
        print("job database is up to date")
        return 0
    hosts = None if args.web_only else _code_hosts(settings)

    def build() -> Any:
        """The app of one process, and its review worker thread unless serving webhooks only."""
        store = JobStore(
            open_database(url), lease=settings.job_lease, max_attempts=settings.job_attempts
        )
        if hosts is not None:
            worker = Worker(store, Reviewer(settings, store, hosts))
            threading.Thread(
                target=worker.run_forever, args=(threading.Event(),), daemon=True
            ).start()
        return create_app(settings, store)

    if args.worker_only:
        _review_until_stopped(settings, url, hosts)
        return 0
    if args.dev:
        build().run(host=args.host, port=args.port)
        return 0
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "worker_class": "gthread",
        "threads": args.threads,
        # Webhooks are acknowledged in milliseconds; a request that takes this long is stuck.
        "timeout": 60,
        "graceful_timeout": 30,
        "accesslog": None,
        "errorlog": "-",
        "proc_name": "tidegate-serve",
    }
    GunicornServer(build, options).run()
    return 0


def _review_until_stopped(settings: app_settings.Settings, url: str, hosts: Any) -> None:
    store = JobStore(
        open_database(url), lease=settings.job_lease, max_attempts=settings.job_attempts
    )
    stop = threading.Event()
    # SIGTERM (Kubernetes stopping the pod) ends the loop between jobs; a job cut off by SIGKILL
    # is claimed again once its lease expires.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _log.info("review worker started")
    Worker(store, Reviewer(settings, store, hosts)).run_forever(stop)


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
