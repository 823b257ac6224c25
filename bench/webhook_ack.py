"""Acknowledgement latency and loss of signed GitHub deliveries on loopback (SQLite store).

Sends `--rate` signed `pull_request` deliveries per second for `--seconds` to the real app under
werkzeug's threaded server over HTTP, then checks every one was stored exactly once.

    .venv/bin/python -m bench.webhook_ack --rate 200 --seconds 30
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from werkzeug.serving import make_server

from app.database import open_database, sqlite_url
from app.migrate import upgrade
from app.settings import Settings
from app.store import JobStore
from app.web import create_app

SECRET = b"bench secret"


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), github_webhook_secret=SECRET)
        engine = open_database(sqlite_url(Path(tmp) / "jobs.sqlite"))
        upgrade(engine)
        store = JobStore(engine)
        server = make_server("127.0.0.1", 0, create_app(settings, store), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/webhooks/github"
        latencies: list[float] = []
        failures: list[int] = []
        session_local = threading.local()

        def send(number: int) -> None:
            session = getattr(session_local, "s", None) or requests.Session()
            session_local.s = session
            body = payload(number)
            signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            headers = {
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature,
            }
            start = time.perf_counter()
            response = session.post(url, data=body, headers=headers, timeout=30)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 202:
                failures.append(response.status_code)

        total = args.rate * args.seconds
        begin = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            for number in range(total):
                delay = begin + number / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(send, number + 1)
        elapsed = time.perf_counter() - begin
        server.shutdown()
        stored = store.deliveries()
        ordered = sorted(latencies)
        print(
            f"sent {total} in {elapsed:.1f}s ({total / elapsed:.0f}/s); acknowledged "
            f"{len(latencies) - len(failures)}, refused {len(failures)}, stored {stored}, "
            f"lost {total - stored}; ack latency p50 {statistics.median(ordered) * 1000:.1f} ms, "
            f"p99 {ordered[int(len(ordered) * 0.99) - 1] * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
