"""The webhook endpoints, health probes and metrics, as a Flask app.

A delivery is verified on its raw bytes before anything else, parsed, and stored before it is
acknowledged (202); a redelivery of a stored id is acknowledged as a duplicate (200). Refusals
are 4xx with a one-line JSON reason: 401 unsigned or forged, 413 oversized, 400 malformed, and
nothing is stored for them. No request ever ends in a traceback: an unexpected failure answers
503 (the provider redelivers) and is logged without the payload. Every answer carries a
`Server-Timing: app;dur=MS` header, the time the app spent on the request, so a slow
acknowledgement can be told apart from time spent queueing before the app or in the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from app.metrics import CONTENT_TYPE, AppMetrics
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

__all__ = ["MAX_DELIVERY", "create_app"]

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


def create_app(settings: Settings, store: JobStore, metrics: AppMetrics | None = None) -> Flask:
    """Return the WSGI app."""
    app = Flask("tidegate")
    app.config["MAX_CONTENT_LENGTH"] = MAX_DELIVERY
    measured = metrics or AppMetrics()

    def count(provider: str, event: str, result: str) -> None:
        # The event header is not signed: only known names become label values.
        label = event if event in _EVENTS else "other"
        measured.deliveries.labels(provider, label, result).inc()

    def receive(
        provider: str,
        verify: Callable[[bytes], None],
        parse: Callable[[dict[str, str], bytes], Delivery],
    ) -> tuple[Response, int]:
        body = request.get_data(cache=False)
        try:
            verify(body)
        except WebhookError as exc:
            count(provider, "-", "unauthorized")
            return _refuse(401, str(exc))
        try:
            delivery = parse(dict(request.headers), body)
        except WebhookError as exc:
            count(provider, "-", "malformed")
            return _refuse(400, str(exc))
        if delivery.work is None:
            count(provider, delivery.event, "ignored")
            return _answer("ignored"), 200
        if not store.record(delivery):
            count(provider, delivery.event, "duplicate")
            return _answer("duplicate"), 200
        count(provider, delivery.event, "stored")
        _log.info(
            "stored delivery",
            extra={"delivery": delivery.delivery_id[:200], "event": delivery.event[:80]},
        )
        return _answer("stored"), 202

    @app.post("/webhooks/github")
    def github() -> tuple[Response, int]:
        secret = settings.github_webhook_secret
        return receive(
            "github",
            lambda body: verify_github(secret, body, request.headers.get("X-Hub-Signature-256")),
            parse_github,
        )

    @app.post("/webhooks/gitlab")
    def gitlab() -> tuple[Response, int]:
        secret = settings.gitlab_webhook_secret
        return receive(
            "gitlab",
            lambda _body: verify_gitlab(secret, request.headers.get("X-Gitlab-Token")),
            parse_gitlab,
        )

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify(status="ok"), 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        # Ready means able to store deliveries: the job database answers.
        try:
            store.ping()
        except Exception as exc:
            _log.warning("not ready: job database unreachable (%s)", type(exc).__name__)
            return jsonify(status="unavailable", reason="job database unreachable"), 503
        return jsonify(status="ready"), 200

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(measured.exposition(store), content_type=CONTENT_TYPE)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return _refuse(exc.code or 400, exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        _log.error("request failed: %s", type(exc).__name__)
        return _refuse(503, "temporarily unavailable")

    app.wsgi_app = _timed(app.wsgi_app)  # type: ignore[assignment,method-assign]
    return app


def _timed(inner: Callable[[Any, Any], Iterable[bytes]]) -> Callable[[Any, Any], Iterable[bytes]]:
    """Wrap a WSGI app so that each answer says how long the app took (`Server-Timing`)."""

    def wrapped(environ: Any, start_response: Any) -> Iterable[bytes]:
        begin = time.perf_counter()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # Flask starts the response once the view has returned: this is the app's time.
            spent = (time.perf_counter() - begin) * 1000
            headers.append(("Server-Timing", f"app;dur={spent:.2f}"))
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    return wrapped


def _answer(result: str) -> Response:
    # A fixed body: cheaper than `jsonify`, which serialises on every acknowledgement.
    return Response(_ANSWERS[result], mimetype="application/json")


_ANSWERS = {
    name: f'{{"result":"{name}"}}\n'.encode() for name in ("ignored", "duplicate", "stored")
}


def _refuse(status: int, reason: str) -> tuple[Response, int]:
    response: Any = jsonify(error=reason)
    return response, status
