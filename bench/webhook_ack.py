"""Acknowledgement latency and loss of signed GitHub deliveries to `tidegate serve` (gunicorn).

Starts `tidegate serve --web-only` (gunicorn, the production server) as its own process on an
SQLite file or on a PostgreSQL server started for the run (`--database`), sends `--rate` signed
`pull_request` deliveries per second for `--seconds` on a fixed schedule (open loop: a late
answer does not delay the next send), then checks every one was stored exactly once. Latency is
counted from each delivery's scheduled send time, so client-side queueing is included.

    .venv/bin/python -m bench.webhook_ack --rate 200 --seconds 30 --database sqlite
    .venv/bin/python -m bench.webhook_ack --rate 200 --seconds 30 --database postgresql
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from app.database import open_database, sqlite_url
from app.store import JobStore
from devenv.postgres import PostgresServer

SECRET = b"bench secret"
ROOT = Path(__file__).resolve().parents[1]


def payload(number: int) -> bytes:
    return json.dumps(
        {
            "action": "opened",
            "number": number,
            "pull_request": {
                "draft": False,
                "head": {"sha": f"{number:040x}", "repo": {"full_name": "acme/fleet"}},
                "base": {"ref": "main"},
            },
            "repository": {"full_name": "acme/fleet", "clone_url": "https://example.com/f.git"},
            "installation": {"id": 1},
        }
    ).encode()


@contextlib.contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield sqlite_url(tmp / "jobs.sqlite")
        return
    with PostgresServer() as server:
        yield server.url


@contextlib.contextmanager
def serve(url: str, tmp: Path, workers: int, threads: int) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "TIDEGATE_DATA_DIR": str(tmp / "data"),
        "TIDEGATE_DATABASE_URL": url,
        "TIDEGATE_GITHUB_WEBHOOK_SECRET": SECRET.decode(),
    }
    argv = [sys.executable, "-m", "cli", "serve", "--web-only", "--port", str(port)]
    argv += ["--workers", str(workers), "--threads", str(threads)]
    with (tmp / "server.log").open("wb") as log:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit(
                "the server did not become ready:\n" + (tmp / "server.log").read_text()
            )
        yield base
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with (
            database(args.database, tmp) as url,
            serve(url, tmp, args.workers, args.threads) as base,
        ):
            latencies, failures = run(f"{base}/webhooks/github", args.rate, args.seconds)
            stored = JobStore(open_database(url)).deliveries()
    total = args.rate * args.seconds
    ordered = sorted(latencies)
    print(
        f"{args.database}, gunicorn {args.workers}x{args.threads}: sent {total} at "
        f"{args.rate}/s; acknowledged {len(latencies) - len(failures)}, refused or failed "
        f"{len(failures)}, stored {stored}, lost {total - stored}; ack latency p50 "
        f"{statistics.median(ordered) * 1000:.1f} ms, p99 "
        f"{ordered[int(len(ordered) * 0.99) - 1] * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )


def run(url: str, rate: int, seconds: int) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []
    local = threading.local()

    def send(number: int, due: float) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = payload(number)
        signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
        }
        try:
            response = session.post(url, data=body, headers=headers, timeout=30)
            outcome = "" if response.status_code == 202 else str(response.status_code)
        except requests.RequestException as exc:
            outcome = type(exc).__name__
        latencies.append(time.perf_counter() - due)
        if outcome:
            failures.append(outcome)

    total = rate * seconds
    begin = time.perf_counter() + 0.5
    with ThreadPoolExecutor(64) as pool:
        for number in range(total):
            due = begin + number / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, number + 1, due)
    return latencies, failures


if __name__ == "__main__":
    main()
