"""The Slack provider against a Slack-compatible endpoint on loopback."""

from __future__ import annotations

import json
import logging

import pytest

from core.fetch import FetchPolicy
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.event import Event
from reconciler.notification.service import Notifier
from tests.notification.objects import alert_obj, ks_event, provider_obj
from tests.notification.receivers import Receiver, receiver
from tests.notification.store import MemoryStore

TOKEN = "CANARY-slack-bot-token-0b7e"


def run(hook: Receiver, provider_spec: dict[str, object], *events: Event) -> Dispatcher:
    store = MemoryStore(
        [
            provider_obj("slack", {"type": "slack", **provider_spec}),
            alert_obj(
                "chat",
                {
                    "providerRef": {"name": "slack"},
                    "eventSources": [{"kind": "Kustomization", "name": "*"}],
                    "inclusionList": ["failed|finished"],
                    "eventMetadata": {"cluster": "prod-eu"},
                },
            ),
        ],
        {("flux-system", "slack-token"): {"token": TOKEN.encode()}},
    )
    policy = FetchPolicy(allowed_hosts=frozenset({hook.host}), allow_loopback=True)
    dispatcher = Dispatcher(policy, sleep=lambda _: None)
    dispatcher.start()
    notifier = Notifier(store, dispatcher)
    for event in events:
        notifier.notify(event)
    dispatcher.drain()
    dispatcher.stop()
    return dispatcher


def test_slack_web_api_gets_flux_payload_with_bearer_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiver("/api/chat.postMessage") as hook:
        hook.answers = [b'{"ok":true}', b'{"ok":true}']
        dispatcher = run(
            hook,
            {"address": hook.url, "channel": "deploys", "secretRef": {"name": "slack-token"}},
            ks_event(),
            ks_event(message="Health check passed in 2s"),
            ks_event("db", severity="error", message="apply failed: <Secret> & more"),
        )
    assert dispatcher.outcome.sent == 2
    first, second = (json.loads(r.body) for r in hook.received)
    assert first == {
        "channel": "deploys",
        "username": "kustomize-controller",
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [
            {
                "color": "good",
                "author_name": "kustomization/apps.flux-system",
                "text": "Reconciliation finished in 1s, next run in 10m",
                "mrkdwn_in": ["text"],
                "fields": [
                    {"title": "cluster", "value": "prod-eu", "short": False},
                    {"title": "revision", "value": "main@sha1:0123abcd", "short": False},
                ],
            }
        ],
    }
    assert second["attachments"][0]["color"] == "danger"
    assert b"\\u003cSecret\\u003e \\u0026 more" in hook.received[1].body
    assert hook.received[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert all(TOKEN.encode() not in r.body for r in hook.received)
    assert TOKEN not in caplog.text


def test_slack_web_api_refusal_is_a_failure_without_retry(caplog: pytest.LogCaptureFixture) -> None:
    with receiver("/api/chat.postMessage") as hook:
        hook.answers = [b'{"ok":false,"error":"channel_not_found"}']
        dispatcher = run(hook, {"address": hook.url, "username": "tidegate"}, ks_event())
    assert len(hook.received) == 1
    assert json.loads(hook.received[0].body)["username"] == "tidegate"
    assert "authorization" not in hook.received[0].headers
    assert (dispatcher.outcome.sent, dispatcher.outcome.failed) == (0, 1)
    assert "channel_not_found" in caplog.text


def test_incoming_webhook_answers_by_status_only() -> None:
    with receiver("/services/T000/B000/XXXX") as hook:
        hook.answers = [b"ok"]
        dispatcher = run(hook, {"address": hook.url}, ks_event())
    assert dispatcher.outcome.sent == 1
    assert json.loads(hook.received[0].body)["channel"] == ""


def test_commit_status_updates_are_not_sent_to_chat() -> None:
    with receiver("/services/T000/B000/XXXX") as hook:
        update = ks_event(metadata={"kustomize.toolkit.fluxcd.io/commit_status": "update"})
        dispatcher = run(hook, {"address": hook.url}, update)
    assert hook.received == []
    assert dispatcher.outcome.sent == 0
