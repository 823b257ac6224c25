"""Acknowledgement latency and loss of signed GitHub deliveries to `tidegate serve` (gunicorn).

Starts `tidegate serve --web-only` (gunicorn, the production server) as its own process on an
SQLite file or on a PostgreSQL server started for the run (`--database`), sends `--rate` signed
`pull_request` deliveries per second for `--seconds` on a fixed schedule (open loop: a late
answer does not delay the next send), then checks every one was stored exactly once. Latency is
counted from each delivery's scheduled send time, so client-side queueing is included. It also
reports the server's CPU time per acknowledgement (every gunicorn process, read from /proc
before and after the load) and the load average, since on a shared machine those bound the
latency more than the server's code does. The client speaks plain `http.client` on kept-alive
connections, with every delivery signed before the clock starts and its garbage collector off
while it sends, so it takes as little of the machine's CPU as it can. Besides the latency it
prints how late the client began each send, the server's own time in the app (its
`Server-Timing` header) and the rest (gunicorn's queue, network, connection set-up).

    .venv/bin/python -m bench.webhook_ack --rate 200 --seconds 30 --database sqlite
    .venv/bin/python -m bench.webhook_ack --rate 200 --seconds 30 --database postgresql
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import gc
import hashlib
import hmac
import http.client
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
def serve(url: str, tmp: Path, workers: int, threads: int) -> Iterator[tuple[str, int]]:
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
        yield base, server.pid
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
            serve(url, tmp, args.workers, args.threads) as (base, pid),
        ):
            cpu_before, load_before = cpu_seconds(pid), os.getloadavg()[0]
            samples = run(base, args.rate, args.seconds)
            cpu = cpu_seconds(pid) - cpu_before
            load_after = os.getloadavg()[0]
            stored = JobStore(open_database(url)).deliveries()
    total = args.rate * args.seconds
    failures = samples.failures
    print(
        f"{args.database}, gunicorn {args.workers}x{args.threads}: sent {total} at "
        f"{args.rate}/s; acknowledged {len(samples.latencies) - len(failures)}, refused or failed "
        f"{len(failures)}, stored {stored}, lost {total - stored}; ack latency "
        f"{percentiles(samples.latencies)}; server CPU {cpu / total * 1000:.2f} ms per ack; "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(f"  client's lateness in starting a send: {percentiles(samples.lags)}")
    print(f"  server, in the app (Server-Timing): {percentiles(samples.apps)}")
    print(
        f"  the rest (gunicorn's queue, network, connection set-up): "
        f"{percentiles(samples.outside)}; {samples.connects} connections opened"
    )
    if failures:
        print("failures:", dict(collections.Counter(failures)))


def cpu_seconds(pid: int) -> float:
    """User and system CPU of process `pid` and its live children (gunicorn's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for task in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (thread / "children").read_text().split():
                found += [int(child), *_children(int(child))]
    return found


@dataclasses.dataclass
class Samples:
    """What the client saw, in seconds, one entry per delivery (`apps`, `outside`: per answer).

    `lags` is how late the client began sending (its own scheduling), `apps` the server's own
    time in the app (its `Server-Timing` header), and `outside` what is left of the latency:
    the connection, gunicorn's queueing before the app, the network and reading the answer.
    """

    latencies: list[float] = dataclasses.field(default_factory=list)
    lags: list[float] = dataclasses.field(default_factory=list)
    apps: list[float] = dataclasses.field(default_factory=list)
    outside: list[float] = dataclasses.field(default_factory=list)
    connects: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)


def _server_timing(header: str | None) -> float | None:
    """The `app;dur=MS` entry of a `Server-Timing` header, in seconds."""
    for entry in (header or "").split(","):
        name, _, duration = entry.strip().partition(";dur=")
        if name == "app" and duration:
            return float(duration) / 1000
    return None


def percentiles(values: list[float]) -> str:
    """`p50 X ms, p99 Y ms, max Z ms` of `values` (seconds)."""
    if not values:
        return "none"
    ordered = sorted(values)
    p99 = ordered[max(int(len(ordered) * 0.99) - 1, 0)]
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


def run(base: str, rate: int, seconds: int) -> Samples:
    samples = Samples()
    latencies, lags, apps, outside = samples.latencies, samples.lags, samples.apps, samples.outside
    failures = samples.failures
    local = threading.local()
    host, port = base.removeprefix("http://").split(":")

    def send(body: bytes, headers: dict[str, str], due: float) -> None:
        started = time.perf_counter()
        try:
            connection = getattr(local, "connection", None)
            if connection is not None and time.monotonic() - local.used > 1.0:
                # gunicorn closes a connection idle for 2 s; reusing one near that races the
                # close (a broken pipe that never reached the server), so start afresh.
                connection.close()
                connection = None
            local.used = time.monotonic()
            if connection is None:
                samples.connects += 1
                connection = local.connection = http.client.HTTPConnection(
                    host, int(port), timeout=30
                )
            connection.request("POST", "/webhooks/github", body, headers)
            response = connection.getresponse()
            response.read()
            app = _server_timing(response.getheader("Server-Timing"))
            outcome = "" if response.status == 202 else str(response.status)
            if response.will_close:
                connection.close()
                local.connection = None
        except (OSError, http.client.HTTPException) as exc:
            app = None
            outcome = type(exc).__name__
            if local.connection is not None:
                local.connection.close()
            local.connection = None
        latency = time.perf_counter() - due
        latencies.append(latency)
        lags.append(started - due)
        if app is not None:
            apps.append(app)
            outside.append(latency - (started - due) - app)
        if outcome:
            failures.append(outcome)

    # Everything a provider prepares before it sends is prepared before the clock starts, and the
    # client's collector stays off while it sends: the client shares the machine's cores with the
    # server, and its own work or pauses would show up as acknowledgement latency.
    prepared = [signed(number + 1) for number in range(rate * seconds)]
    gc.collect()
    gc.disable()
    try:
        begin = time.perf_counter() + 0.5
        with ThreadPoolExecutor(64) as pool:
            for number, (body, headers) in enumerate(prepared):
                due = begin + number / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(send, body, headers, due)
    finally:
        gc.enable()
    return samples


def signed(number: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one signed `pull_request` delivery."""
    body = payload(number)
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
    }
    return body, headers


if __name__ == "__main__":
    main()
