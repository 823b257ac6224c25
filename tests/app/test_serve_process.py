"""`tidegate serve` as a real process: gunicorn by default, Flask's server only with `--dev`;
deliveries are acknowledged over HTTP and /metrics sums every gunicorn worker process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devenv import github_webhook
from devenv.ports import START_ATTEMPTS, free_port, port_taken
from tests.app.conftest import WEBHOOK_SECRET, pull_request_event
from tests.cluster.kube import eventually

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serving(tmp_path: Path, *flags: str, pids: list[int] | None = None) -> Iterator[str]:
    """Serve on a free port; the server's process id goes into `pids` when given."""
    env = {
        **os.environ,
        "TIDEGATE_DATA_DIR": str(tmp_path / "data"),
        "TIDEGATE_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET.decode(),
    }
    log = tmp_path / "serve.log"
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        argv = [sys.executable, "-m", "cli", "serve", "--web-only", "--port", str(port), *flags]
        with log.open("wb") as out:
            server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        if _ready(base, server):
            break
        server.wait(timeout=60)
        if attempt == START_ATTEMPTS or not port_taken(log.read_text()):
            pytest.fail(f"tidegate serve did not start:\n{log.read_text()}")
        # another process took the port between choosing and binding it: choose again
    if pids is not None:
        pids.append(server.pid)
    try:
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def _ready(base: str, server: subprocess.Popen[bytes]) -> bool:
    """Wait until the server answers /readyz (True), or exits or misses the deadline (False)."""
    deadline = time.monotonic() + 120
    while server.poll() is None:
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            if requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                return True
        if time.monotonic() > deadline:
            server.kill()
            break
        time.sleep(0.2)
    return False


def deliver(base: str, number: int, *, chunked: bool = False) -> requests.Response:
    body = json.dumps(
        pull_request_event("opened", number=number, head=f"{number:040x}", clone_url="https://x/y")
    ).encode()
    headers = github_webhook.signed_headers(WEBHOOK_SECRET, body)
    # A generator makes requests send the body chunked, without a Content-Length.
    data = iter([body[:100], body[100:]]) if chunked else body
    return requests.post(f"{base}/webhooks/github", data=data, headers=headers, timeout=30)


def open_files(pid: int) -> list[str]:
    """What a live process has open. A worker opens and closes sockets while it is listed, so
    a descriptor may be gone by the time its link is read: skip it."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            targets.append(os.readlink(fd))
    return targets


def test_gunicorn_serves_by_default_and_metrics_sum_its_processes(tmp_path: Path) -> None:
    with serving(tmp_path, "--workers", "2", "--threads", "2") as base:
        answers = [deliver(base, number) for number in range(1, 8)]
        answers.append(deliver(base, 8, chunked=True))
        metrics = requests.get(f"{base}/metrics", timeout=60).text
    assert [a.status_code for a in answers] == [202] * 8
    assert {a.headers["Server"].split("/")[0] for a in answers} == {"gunicorn"}
    stored = 'tidegate_deliveries_total{event="pull_request",provider="github",result="stored"}'
    assert f"{stored} 8.0" in metrics
    assert "tidegate_queue_depth 8.0" in metrics


def test_the_development_server_only_on_request(tmp_path: Path) -> None:
    with serving(tmp_path, "--dev") as base:
        answer = deliver(base, 1)
    assert answer.status_code == 202
    assert answer.headers["Server"].startswith("Werkzeug")


def test_the_workers_heartbeat_in_memory_not_on_disk(tmp_path: Path) -> None:
    """gunicorn touches a worker's heartbeat file on every turn of its loop: in /dev/shm that
    costs no journal write per request."""
    pids: list[int] = []
    with serving(tmp_path, "--workers", "2", "--threads", "2", pids=pids):
        (arbiter,) = pids
        # One worker answering /readyz does not mean the arbiter has forked the other yet.
        workers = eventually(
            lambda: found if len(found := _children(arbiter)) >= 2 else None, "two workers"
        )
        heartbeats = sorted(
            target for pid in workers for target in open_files(pid) if "wgunicorn-" in target
        )
    assert len(workers) == 2
    assert len(heartbeats) == 2
    # The worker that touches them at most once a second, not on every turn of its loop.
    assert "Using worker: app.server.HeartbeatWorker" in (tmp_path / "serve.log").read_text()
    assert all(target.startswith("/dev/shm/wgunicorn-") for target in heartbeats), heartbeats


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
