"""Acknowledgement latency and loss of signed GitHub deliveries to `tidegate serve` (gunicorn).

Starts `tidegate serve --web-only` (gunicorn, the production server) as its own process on an
SQLite file or on a PostgreSQL server started for the run (`--database`), sends `--rate` signed
`pull_request` deliveries per second for `--seconds` on a fixed schedule (open loop: a late
answer does not delay the next send), then checks every one was stored exactly once. Latency is
counted from each delivery's scheduled send time, so client-side queueing is included. It also
reports the CPU time per acknowledgement of the server (every gunicorn process, read from /proc
before and after the load), of the PostgreSQL server (its processes, likewise) and of the
client itself, and the load average, since on a shared machine those bound the
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
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
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
def database(kind: str, tmp: Path) -> Iterator[tuple[str, int | None]]:
    """The database's URL, and the process id of its server (None for SQLite: in-process)."""
    if kind == "sqlite":
        yield sqlite_url(tmp / "jobs.sqlite"), None
        return
    with PostgresServer() as server:
        yield server.url, server.pid


@contextlib.contextmanager
def serve(
    url: str, tmp: Path, workers: int, threads: int, switch_interval: float | None
) -> Iterator[tuple[str, int]]:
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
    if switch_interval is not None:
        argv += ["--switch-interval", str(switch_interval)]
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
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="`tidegate serve --switch-interval`"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with (
            database(args.database, tmp) as (url, database_pid),
            serve(url, tmp, args.workers, args.threads, args.switch_interval) as (base, pid),
        ):
            cpu_before, load_before = cpu_seconds(pid), os.getloadavg()[0]
            database_before = cpu_seconds(database_pid) if database_pid else 0.0
            client_before = time.process_time()
            samples = run(base, args.rate, args.seconds)
            client = time.process_time() - client_before
            cpu = cpu_seconds(pid) - cpu_before
            database_cpu = (cpu_seconds(database_pid) - database_before) if database_pid else 0.0
            load_after = os.getloadavg()[0]
            stored = JobStore(open_database(url)).deliveries()
    total = args.rate * args.seconds
    failures = samples.failures
    print(
        f"{args.database}, gunicorn {args.workers}x{args.threads}, switch interval "
        f"{args.switch_interval or 'default'}: sent {total} at "
        f"{args.rate}/s; acknowledged {len(samples.latencies) - len(failures)}, refused or failed "
        f"{len(failures)}, stored {stored}, lost {total - stored}; ack latency "
        f"{percentiles(samples.latencies)}; server CPU {cpu / total * 1000:.2f} ms per ack; "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(
        f"  CPU per ack: server {cpu / total * 1000:.2f} ms, database server "
        f"{database_cpu / total * 1000:.2f} ms (PostgreSQL's processes; SQLite's is the "
        f"server's), client {client / total * 1000:.2f} ms"
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


class _Exchange:
    """One request in flight on one connection, and what has come back so far."""

    def __init__(self, sock: socket.socket, due: float, sent: float) -> None:
        self.sock = sock
        self.due = due
        self.sent = sent
        self.received = b""


def run(base: str, rate: int, seconds: int) -> Samples:
    """Send on schedule from one thread, over non-blocking kept-alive connections.

    One thread and a selector, not a pool of threads: the client's threads would contend for
    its interpreter lock, and their waits would count as acknowledgement latency.
    """
    samples = Samples()
    host, port = base.removeprefix("http://").split(":")
    # Everything a provider prepares before it sends is prepared before the clock starts, and the
    # client's collector stays off while it sends: the client shares the machine's cores with the
    # server, and its own work or pauses would show up as acknowledgement latency.
    prepared = [signed(number + 1, host) for number in range(rate * seconds)]
    selector = selectors.DefaultSelector()
    idle: list[tuple[socket.socket, float]] = []  # connections and when they were last used
    gc.collect()
    gc.disable()
    try:
        begin = time.perf_counter() + 0.5
        following = 0
        in_flight = 0
        deadline = begin + seconds + 60
        while (following < len(prepared) or in_flight) and time.perf_counter() < deadline:
            now = time.perf_counter()
            while following < len(prepared) and begin + following / rate <= now:
                due = begin + following / rate
                if _send(prepared[following], due, idle, selector, samples, (host, int(port))):
                    in_flight += 1
                following += 1
            wait = begin + following / rate - time.perf_counter()
            if following >= len(prepared):
                wait = 1.0
            for key, _ in selector.select(max(wait, 0)):
                if _receive(key.data, idle, selector, samples):
                    in_flight -= 1
        samples.failures += ["no answer"] * in_flight
    finally:
        gc.enable()
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        for sock, _ in idle:
            sock.close()
    return samples


def _send(
    request: bytes,
    due: float,
    idle: list[tuple[socket.socket, float]],
    selector: selectors.BaseSelector,
    samples: Samples,
    address: tuple[str, int],
) -> bool:
    """Send `request` on an idle or new connection; False if it could not be sent."""
    now = time.perf_counter()
    sock = None
    while idle:
        candidate, used = idle.pop()
        if now - used <= 1.0:
            sock = candidate
            break
        # gunicorn closes a connection idle for 2 s; reusing one near that races the close (a
        # request that never reaches the server), so such a connection is closed and replaced.
        candidate.close()
    if sock is None:
        samples.connects += 1
        sock = socket.create_connection(address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
    exchange = _Exchange(sock, due, time.perf_counter())
    try:
        written = sock.send(request)
        if written < len(request):  # the socket's buffer was full: finish the request blocking
            sock.setblocking(True)
            sock.sendall(request[written:])
            sock.setblocking(False)
    except OSError as exc:
        sock.close()
        samples.failures.append(type(exc).__name__)
        _record(exchange, None, samples)
        return False
    selector.register(sock, selectors.EVENT_READ, exchange)
    return True


def _receive(
    exchange: _Exchange,
    idle: list[tuple[socket.socket, float]],
    selector: selectors.BaseSelector,
    samples: Samples,
) -> bool:
    """Read what arrived; True once the answer is complete (or the connection failed)."""
    try:
        chunk = exchange.sock.recv(65536)
    except OSError as exc:
        chunk, failure = b"", type(exc).__name__
    else:
        failure = "connection closed"
    exchange.received += chunk
    head, separator, body = exchange.received.partition(b"\r\n\r\n")
    fields = _fields(head) if separator else {}
    complete = bool(separator) and len(body) >= int(fields.get("content-length", "0"))
    if not chunk or complete:
        selector.unregister(exchange.sock)
    if not complete:
        if not chunk:
            exchange.sock.close()
            samples.failures.append(failure)
            _record(exchange, None, samples)
            return True
        return False
    status = head.split(b" ", 2)[1].decode()
    if status != "202":
        samples.failures.append(status)
    _record(exchange, _server_timing(fields.get("server-timing")), samples)
    if fields.get("connection", "").lower() == "close":
        exchange.sock.close()
    else:
        idle.append((exchange.sock, time.perf_counter()))
    return True


def _fields(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }


def _record(exchange: _Exchange, app: float | None, samples: Samples) -> None:
    latency = time.perf_counter() - exchange.due
    lag = exchange.sent - exchange.due
    samples.latencies.append(latency)
    samples.lags.append(lag)
    if app is not None:
        samples.apps.append(app)
        samples.outside.append(latency - lag - app)


def signed(number: int, host: str) -> bytes:
    """One signed `pull_request` delivery, as the bytes of its HTTP request."""
    body = payload(number)
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    head = (
        f"POST /webhooks/github HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-GitHub-Event: pull_request\r\n"
        f"X-GitHub-Delivery: {uuid.uuid4()}\r\n"
        f"X-Hub-Signature-256: {signature}\r\n\r\n"
    )
    return head.encode() + body


if __name__ == "__main__":
    main()
