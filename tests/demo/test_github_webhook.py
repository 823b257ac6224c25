"""The demo's webhook deliveries, received by a loopback server and read by Tidegate's own parser.

What `tidegate demo` and `bench.webhook_comment` send must pass the signature check and parse
into the pull request's work exactly as `tidegate serve` reads it; a refused delivery must not
pass silently.
"""

from __future__ import annotations

import urllib.error
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from core.host.serving import Serving, ThreadedServer
from core.vcs.webhooks import WebhookError, Work, WorkKind, parse_github, verify_github
from devenv.github_webhook import deliver, pull_request_event

SECRET = b"demo webhook secret"
HEAD = "1" * 40
BASE = "2" * 40


class _Receiver(BaseHTTPRequestHandler):
    """Verifies each delivery as `tidegate serve` does: 202 and kept, or 401."""

    received: ClassVar[list[Work | None]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            verify_github(SECRET, body, self.headers.get("X-Hub-Signature-256"))
        except WebhookError:
            self.send_response(401)
        else:
            self.received.append(parse_github(dict(self.headers.items()), body).work)
            self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Serving[ThreadedServer]:
    _Receiver.received.clear()
    return Serving(lambda: ThreadedServer(("127.0.0.1", 0), _Receiver), name="webhook receiver")


def _event(action: str) -> dict[str, object]:
    return pull_request_event(
        action,
        number=3,
        head=HEAD,
        head_ref="feature",
        base=BASE,
        repository="acme/fleet",
        clone_url="http://127.0.0.1:9/acme/fleet.git",
        installation_id=7,
    )


def test_a_delivery_is_signed_and_reads_as_the_pull_requests_work(
    receiver: Serving[ThreadedServer],
) -> None:
    with receiver:
        status = deliver(f"{receiver.url}/webhooks/github", SECRET, _event("synchronize"))

    assert status == 202
    assert _Receiver.received == [
        Work(
            kind=WorkKind.REVIEW,
            repository="acme/fleet",
            number=3,
            head_sha=HEAD,
            base_ref="main",
            clone_url="http://127.0.0.1:9/acme/fleet.git",
            installation_id=7,
        )
    ]


def test_a_refused_delivery_raises(receiver: Serving[ThreadedServer]) -> None:
    with receiver, pytest.raises(urllib.error.HTTPError, match="401"):
        deliver(f"{receiver.url}/webhooks/github", b"another secret", _event("opened"))

    assert _Receiver.received == []
