"""The webhook endpoints as a bare WSGI app, in front of the Flask app that serves the rest.

`POST /webhooks/github` and `POST /webhooks/gitlab` are answered here without entering Flask:
no request context, no URL routing, no `Request` or `Response` objects. At a burst of
deliveries every acknowledgement queues behind the others' CPU (the interpreter lock, shared
cores), so the acknowledgement does only what it must: read the body, verify it, parse it,
store it, count it, log one line and answer. Every other request (probes, metrics, other
methods on these paths) goes to the wrapped app unchanged.

The rules are the app's (see app/web.py): a delivery is verified on its raw bytes before
anything else, parsed, and stored before it is acknowledged (202); a redelivery of a stored id
is acknowledged as a duplicate (200). Refusals are 4xx with a one-line JSON reason: 401 unsigned
or forged, 413 oversized, 400 malformed, and nothing is stored for them. An unexpected failure
answers 503 (the provider redelivers) and is logged by its type alone, never with the payload.
Every answer carries `Server-Timing: app;dur=MS`. This module must not parse a body before it
is verified, nor read more than `MAX_DELIVERY` bytes of one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from app.metrics import AppMetrics
from app.settings import Settings
from app.store import JobStore
from core.vcs.webhooks import (
    Delivery,
    WebhookError,
    parse_github,
    parse_gitlab,
    verify_github,
    verify_gitlab,
)

__all__ = ["MAX_DELIVERY", "Webhooks"]

MAX_DELIVERY = 25 << 20
"""GitHub caps payloads at 25 MB; nothing larger is a genuine delivery."""

_log = logging.getLogger("tidegate.app")

_EVENTS = frozenset(
    {
        "pull_request",
        "pull_request_review",
        "issue_comment",
        "check_suite",
        "check_run",
        "push",
        "ping",
        "Merge Request Hook",
        "Note Hook",
        "Push Hook",
        "-",
    }
)
"""Event names that may become metric label values (the event header is not signed)."""

_GITHUB_HEADERS = (
    ("X-GitHub-Event", "HTTP_X_GITHUB_EVENT"),
    ("X-GitHub-Delivery", "HTTP_X_GITHUB_DELIVERY"),
)
_GITLAB_HEADERS = (
    ("X-Gitlab-Event", "HTTP_X_GITLAB_EVENT"),
    ("X-Gitlab-Event-UUID", "HTTP_X_GITLAB_EVENT_UUID"),
)
"""The headers each parser reads, and their WSGI environ keys: only these are copied."""

_STATUS = {
    200: "200 OK",
    202: "202 Accepted",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    413: "413 Content Too Large",
    503: "503 Service Unavailable",
}
_ANSWERS = {
    name: f'{{"result":"{name}"}}\n'.encode() for name in ("ignored", "duplicate", "stored")
}

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class _RefusedError(Exception):
    """A delivery refused before it is parsed: its status and the reason to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Webhooks:
    """WSGI app: the two webhook endpoints here, everything else to `fallback`."""

    def __init__(
        self, settings: Settings, store: JobStore, metrics: AppMetrics, fallback: WSGIApp
    ) -> None:
        self._settings = settings
        self._store = store
        self._fallback = fallback
        self._deliveries = metrics.deliveries
        # Counter children by label values: `labels()` takes a lock and builds a key each call.
        self._counters: dict[tuple[str, str, str], Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Answer a webhook delivery, or pass the request on."""
        if environ.get("REQUEST_METHOD") == "POST":
            path = environ.get("PATH_INFO")
            if path == "/webhooks/github":
                return self._receive(environ, start_response, "github")
            if path == "/webhooks/gitlab":
                return self._receive(environ, start_response, "gitlab")
        return self._fallback(environ, start_response)

    def _receive(self, environ: dict[str, Any], start_response: Any, provider: str) -> list[bytes]:
        begin = time.perf_counter()
        try:
            status, body = self._acknowledge(environ, provider)
        except _RefusedError as refused:
            status, body = refused.status, _reason(str(refused))
        except Exception as exc:
            _log.error("request failed: %s", type(exc).__name__)
            status, body = 503, _reason("temporarily unavailable")
        spent = (time.perf_counter() - begin) * 1000
        start_response(
            _STATUS[status],
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Server-Timing", f"app;dur={spent:.2f}"),
            ],
        )
        return [body]

    def _acknowledge(self, environ: dict[str, Any], provider: str) -> tuple[int, bytes]:
        """The status and body for one delivery: the rules of the module docstring, in order."""
        body = _body(environ)
        github = provider == "github"
        try:
            if github:
                verify_github(
                    self._settings.github_webhook_secret,
                    body,
                    environ.get("HTTP_X_HUB_SIGNATURE_256"),
                )
            else:
                verify_gitlab(
                    self._settings.gitlab_webhook_secret, environ.get("HTTP_X_GITLAB_TOKEN")
                )
        except WebhookError as exc:
            self._count(provider, "-", "unauthorized")
            raise _RefusedError(401, str(exc)) from None
        names = _GITHUB_HEADERS if github else _GITLAB_HEADERS
        headers = {name: environ[key] for name, key in names if key in environ}
        try:
            delivery = (parse_github if github else parse_gitlab)(headers, body)
        except WebhookError as exc:
            self._count(provider, "-", "malformed")
            raise _RefusedError(400, str(exc)) from None
        return self._store_delivery(provider, delivery)

    def _store_delivery(self, provider: str, delivery: Delivery) -> tuple[int, bytes]:
        if delivery.work is None:
            self._count(provider, delivery.event, "ignored")
            return 200, _ANSWERS["ignored"]
        if not self._store.record(delivery):
            self._count(provider, delivery.event, "duplicate")
            return 200, _ANSWERS["duplicate"]
        self._count(provider, delivery.event, "stored")
        _log.info(
            "stored delivery",
            extra={"delivery": delivery.delivery_id[:200], "event": delivery.event[:80]},
        )
        return 202, _ANSWERS["stored"]

    def _count(self, provider: str, event: str, result: str) -> None:
        key = (provider, event if event in _EVENTS else "other", result)
        counter = self._counters.get(key)
        if counter is None:
            # Bounded: two providers, the known events and four results.
            counter = self._counters[key] = self._deliveries.labels(*key)
        counter.inc()


def _body(environ: dict[str, Any]) -> bytes:
    """The request body, at most `MAX_DELIVERY` bytes of it (413 beyond, 400 if unreadable)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            size = int(length)
        except ValueError:
            raise _RefusedError(400, "invalid Content-Length") from None
        if size < 0:
            raise _RefusedError(400, "invalid Content-Length")
        if size > MAX_DELIVERY:
            raise _RefusedError(413, "Content Too Large")
        chunks: list[bytes] = []
        while size > 0:
            chunk = stream.read(size)
            if not chunk:
                break  # the client sent less than it announced: the signature will not match
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)
    if not environ.get("wsgi.input_terminated"):
        # No length and a stream the server does not end: reading could wait forever.
        return b""
    # A chunked body, which the server (gunicorn) ends: read one byte past the cap to see it.
    body: bytes = stream.read(MAX_DELIVERY + 1)
    if len(body) > MAX_DELIVERY:
        raise _RefusedError(413, "Content Too Large")
    return body


def _reason(reason: str) -> bytes:
    return (json.dumps({"error": reason}, separators=(",", ":")) + "\n").encode()
