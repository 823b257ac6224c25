"""The service's WSGI app: the webhook endpoints, health probes and metrics.

The webhook endpoints (`POST /webhooks/github`, `POST /webhooks/gitlab`) are answered by
app/ack.py in front of Flask, which has their rules; the probes and metrics are Flask views.
No request ever ends in a traceback: an unexpected failure answers 503 and is logged by its
type alone. Every answer carries a `Server-Timing: app;dur=MS` header, the time the app spent on
the request, so a slow acknowledgement can be told apart from time spent queueing before the
app or in the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from app.ack import MAX_DELIVERY, Webhooks
from app.metrics import CONTENT_TYPE, AppMetrics
from app.settings import Settings
from app.store import JobStore

__all__ = ["MAX_DELIVERY", "create_app"]

_log = logging.getLogger("tidegate.app")


def create_app(settings: Settings, store: JobStore, metrics: AppMetrics | None = None) -> Flask:
    """Return the WSGI app."""
    app = Flask("tidegate")
    app.config["MAX_CONTENT_LENGTH"] = MAX_DELIVERY
    measured = metrics or AppMetrics()

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

    # The webhook endpoints are answered in front of Flask (app/ack.py); the rest is Flask's.
    app.wsgi_app = Webhooks(  # type: ignore[method-assign]
        settings, store, measured, _timed(app.wsgi_app)
    )
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


def _refuse(status: int, reason: str) -> tuple[Response, int]:
    response: Any = jsonify(error=reason)
    return response, status
