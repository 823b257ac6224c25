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
import dataclasses
import logging
import os
import signal
import threading
from typing import Any

from app import settings as app_settings
from core.errors import InputError

# Flask, gunicorn, SQLAlchemy, Alembic and the code-host clients are imported by the handlers:
# registering `serve` must not cost every other command their start-up time.

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
        "--switch-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a gunicorn worker's thread may keep the interpreter lock while another "
        "waits for it (default: the interpreter's, 0.005)",
    )
    parser.add_argument(
        "--dev", action="store_true", help="Flask's development server instead of gunicorn"
    )
    parser.add_argument(
        "--live-cluster",
        action="append",
        default=[],
        metavar="clusters/NAME=KUBECONFIG[#CONTEXT]",
        help="plan this cluster entry point against its cluster with this kubeconfig (exact "
        "prunes and drift in the comment; repeatable; replaces TIDEGATE_LIVE_CLUSTERS); a "
        "read-only identity is enough, see docs/pr-app.md",
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
    from app.database import open_database
    from app.hosts import check_credentials, code_hosts
    from app.logs import configure as configure_logs
    from app.metrics import AppMetrics, enable_multiprocess
    from app.migrate import upgrade
    from app.review import Reviewer, Worker
    from app.server import GunicornServer
    from app.store import JobStore
    from app.web import create_app

    if args.switch_interval is not None and not 0 < args.switch_interval <= 1:
        raise InputError("--switch-interval must be more than 0 and at most 1 (seconds)")
    configure_logs()
    settings = app_settings.from_environment()
    if args.live_cluster:
        clusters = app_settings.live_clusters(args.live_cluster, setting="--live-cluster")
        settings = dataclasses.replace(settings, live_clusters=clusters)
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
    if not args.dev and not args.worker_only:
        # Several gunicorn processes: count in shared files that /metrics merges.
        enable_multiprocess(settings.data_dir / "metrics")
    check_hosts = not args.web_only
    if check_hosts:
        check_credentials(settings)
        # A missing kustomize or helm stops the service here, not every job later.
        settings = app_settings.with_tools(settings)

    def build() -> Any:
        """The app of one process, and its review worker thread unless serving webhooks only."""
        # Every request thread and the review thread may hold a database connection at once.
        store = JobStore(
            open_database(url, threads=args.threads + 1),
            lease=settings.job_lease,
            max_attempts=settings.job_attempts,
        )
        metrics = AppMetrics()
        if check_hosts:
            hosts = code_hosts(settings, metrics)
            worker = Worker(store, Reviewer(settings, store, hosts, metrics), metrics)
            threading.Thread(
                target=worker.run_forever, args=(threading.Event(),), daemon=True
            ).start()
        return create_app(settings, store, metrics)

    if args.worker_only:
        _review_until_stopped(settings, url)
        return 0
    if args.dev:
        build().run(host=args.host, port=args.port)
        return 0
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        # gunicorn's gthread worker with a heartbeat that costs no system call per request.
        "worker_class": "app.server.HeartbeatWorker",
        "threads": args.threads,
        # Webhooks are acknowledged in milliseconds; a request that takes this long is stuck.
        "timeout": 60,
        "graceful_timeout": 30,
        "accesslog": None,
        "errorlog": "-",
        "proc_name": "tidegate-serve",
        "worker_tmp_dir": _heartbeat_dir(),
    }
    GunicornServer(build, options, switch_interval=args.switch_interval).run()
    return 0


def _heartbeat_dir() -> str | None:
    """Where gunicorn's workers touch their heartbeat files: memory when the host offers it.

    A worker touches its file on every turn of its loop, so once per request at a burst of
    webhooks; on a disk file system each touch writes the inode to the journal. None leaves
    gunicorn's default (the temporary directory).
    """
    # gunicorn creates each file with mkstemp (a new random name, owner-only) and unlinks it at
    # once, so a shared, world-writable directory is safe for it.
    shm = "/dev/shm"  # noqa: S108
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _review_until_stopped(settings: app_settings.Settings, url: str) -> None:
    from app.database import open_database
    from app.hosts import code_hosts
    from app.metrics import AppMetrics
    from app.review import Reviewer, Worker
    from app.store import JobStore

    store = JobStore(
        open_database(url), lease=settings.job_lease, max_attempts=settings.job_attempts
    )
    stop = threading.Event()
    # SIGTERM (Kubernetes stopping the pod) ends the loop between jobs; a job cut off by SIGKILL
    # is claimed again once its lease expires.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _log.info("review worker started")
    metrics = AppMetrics()
    hosts = code_hosts(settings, metrics)
    Worker(store, Reviewer(settings, store, hosts, metrics), metrics).run_forever(stop)
