"""The webhook endpoints: refusals store nothing, duplicates are acknowledged once."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app.database import open_database, sqlite_url
from app.store import JobStore
from app.web import MAX_DELIVERY, create_app
from devenv import github_webhook
from tests.app.conftest import Service, pull_request_event

SHA = "a" * 40


def event() -> dict[str, object]:
    return pull_request_event("opened", number=1, head=SHA, clone_url="https://example.com/x.git")


def test_a_signed_delivery_is_stored_and_acknowledged(service: Service) -> None:
    response = service.deliver("pull_request", event())
    assert response.status_code == 202
    assert service.store.counts() == {"queued": 1}


def test_every_answer_says_how_long_the_app_took(service: Service) -> None:
    stored = service.deliver("pull_request", event())
    refused = service.deliver("pull_request", event(), secret=b"guessed")
    for response in (stored, refused):
        name, _, duration = response.headers["Server-Timing"].partition(";dur=")
        assert name == "app"
        assert float(duration) >= 0


def test_a_replayed_delivery_is_acknowledged_but_stored_once(service: Service) -> None:
    assert service.deliver("pull_request", event(), delivery="d-1").status_code == 202
    again = service.deliver("pull_request", event(), delivery="d-1")
    assert again.status_code == 200
    assert again.get_json() == {"result": "duplicate"}
    assert service.store.counts() == {"queued": 1}


def test_a_forged_signature_is_refused_and_nothing_stored(service: Service) -> None:
    response = service.deliver("pull_request", event(), secret=b"guessed")
    assert response.status_code == 401
    assert service.store.deliveries() == 0


def test_an_unsigned_delivery_is_refused(service: Service) -> None:
    response = service.client.post(
        "/webhooks/github",
        data=json.dumps(event()),
        headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-2"},
    )
    assert response.status_code == 401
    assert service.store.deliveries() == 0


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"action": "opened"}', b"\xff"])
def test_malformed_signed_payloads_are_400_and_not_stored(service: Service, body: bytes) -> None:
    response = service.client.post(
        "/webhooks/github",
        data=body,
        headers=github_webhook.signed_headers(b"webhook s3cret", body, delivery="d-3"),
    )
    assert response.status_code == 400
    assert "error" in response.get_json()
    assert service.store.deliveries() == 0


def test_an_oversized_delivery_is_413(service: Service) -> None:
    response = service.client.post(
        "/webhooks/github",
        data=b"x" * (MAX_DELIVERY + 1),
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-4"},
    )
    assert response.status_code == 413
    assert service.store.deliveries() == 0


def test_unknown_events_are_acknowledged_and_not_stored(service: Service) -> None:
    response = service.deliver("star", {"action": "created"})
    assert response.status_code == 200
    assert response.get_json() == {"result": "ignored"}
    assert service.store.deliveries() == 0


def test_gitlab_needs_its_token(service: Service) -> None:
    response = service.client.post(
        "/webhooks/gitlab",
        data=b"{}",
        headers={
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Event-UUID": "u-1",
            "X-Gitlab-Token": "x",
        },
    )
    assert response.status_code == 401


def test_probes_and_metrics(service: Service) -> None:
    service.deliver("pull_request", event())
    assert service.client.get("/healthz").status_code == 200
    assert service.client.get("/readyz").get_json() == {"status": "ready"}
    metrics = service.client.get("/metrics").get_data(as_text=True)
    stored = 'tidegate_deliveries_total{event="pull_request",provider="github",result="stored"}'
    assert f"{stored} 1.0" in metrics
    assert "tidegate_queue_depth 1.0" in metrics
    assert 'tidegate_jobs{state="queued"} 1.0' in metrics


def test_an_unknown_event_name_is_not_a_label_value(service: Service) -> None:
    service.deliver("star", {"action": "created"})
    metrics = service.client.get("/metrics").get_data(as_text=True)
    assert 'event="other",provider="github",result="ignored"} 1.0' in metrics
    assert "star" not in metrics


def test_not_ready_while_the_job_database_is_unreachable(service: Service, tmp_path: Path) -> None:
    store = JobStore(open_database(sqlite_url(tmp_path / "missing" / "jobs.sqlite")))
    client = create_app(service.settings, store).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "reason": "job database unreachable"}
    assert client.get("/healthz").status_code == 200


def test_deliveries_are_answered_without_entering_flask(service: Service) -> None:
    # The webhook endpoints are served in front of Flask: none of these reaches its dispatch
    # (request context, routing, views), while the probes still do.
    dispatched: list[str] = []
    app = service.client.application
    app.before_request(lambda: dispatched.append("before request"))
    assert service.deliver("pull_request", event(), delivery="d-1").status_code == 202
    assert service.deliver("pull_request", event(), delivery="d-1").status_code == 200
    assert service.deliver("pull_request", event(), secret=b"guessed").status_code == 401
    assert service.deliver("star", {"action": "created"}).status_code == 200
    assert service.deliver_gitlab("Push Hook", {}, token=b"wrong").status_code == 401
    assert dispatched == []
    assert service.client.get("/healthz").status_code == 200
    assert dispatched == ["before request"]


def test_a_chunked_delivery_is_read_up_to_the_cap(service: Service) -> None:
    # Without a Content-Length the body is read from a stream the server ends (gunicorn does,
    # `wsgi.input_terminated`), and never more than one byte past the cap.
    body = json.dumps(event()).encode()
    chunked = {"wsgi.input_terminated": True, "CONTENT_LENGTH": ""}
    stored = service.client.post(
        "/webhooks/github",
        input_stream=io.BytesIO(body),
        headers=github_webhook.signed_headers(b"webhook s3cret", body, delivery="d-5"),
        environ_overrides=chunked,
    )
    assert stored.status_code == 202
    oversized = service.client.post(
        "/webhooks/github",
        input_stream=io.BytesIO(b"x" * (MAX_DELIVERY + 1)),
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-6"},
        environ_overrides=chunked,
    )
    assert oversized.status_code == 413
    assert service.store.deliveries() == 1


def test_a_failure_while_storing_is_503_without_the_payload(
    service: Service, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_delivery: object) -> bool:
        raise RuntimeError("database said: acme/fleet secret detail")

    monkeypatch.setattr(service.store, "record", broken)
    response = service.deliver("pull_request", event())
    assert response.status_code == 503
    assert response.get_json() == {"error": "temporarily unavailable"}
    assert "Server-Timing" in response.headers
    assert [r.getMessage() for r in caplog.records] == ["request failed: RuntimeError"]
