"""Delivery to real HTTP receivers on loopback: selection, signatures, retries, overflow."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import pytest

from core.fetch import FetchPolicy
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.providers import OutboundRequest
from reconciler.notification.service import Notifier
from tests.notification.objects import alert_obj, ks_event, provider_obj
from tests.notification.receivers import Receiver, receiver
from tests.notification.store import MemoryStore

TOKEN = "CANARY-hmac-key-7f3a"
HEADER = "CANARY-header-value-91c2"


def loopback(*receivers: Receiver) -> FetchPolicy:
    return FetchPolicy(
        allowed_hosts=frozenset(r.host for r in receivers),
        allow_loopback=True,
        total_timeout=10.0,
    )


def no_wait(_: float) -> None:
    return None


def test_generic_and_hmac_receivers_get_exactly_the_selected_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiver() as generic, receiver() as signed:
        store = MemoryStore(
            [
                provider_obj("generic", {"type": "generic", "address": generic.url}),
                provider_obj("signed", {"type": "generic-hmac", "secretRef": {"name": "hmac"}}),
                alert_obj(
                    "all",
                    {
                        "providerRef": {"name": "generic"},
                        "eventSources": [{"kind": "Kustomization", "name": "*"}],
                        "exclusionList": ["^Dependencies"],
                    },
                ),
                alert_obj(
                    "errors",
                    {
                        "providerRef": {"name": "signed"},
                        "eventSeverity": "error",
                        "eventSources": [{"kind": "Kustomization", "name": "apps"}],
                        "summary": "prod",
                    },
                ),
            ],
            {
                ("flux-system", "hmac"): {
                    "address": signed.url.encode(),
                    "token": TOKEN.encode(),
                    "headers": f"X-Extra: {HEADER}\n".encode(),
                }
            },
        )
        dispatcher = Dispatcher(loopback(generic, signed), sleep=no_wait)
        dispatcher.start()
        notifier = Notifier(store, dispatcher)
        assert notifier.notify(ks_event()) == 1
        assert notifier.notify(ks_event("infra", severity="error", message="boom")) == 1
        assert notifier.notify(ks_event(severity="error", message="apply failed")) == 2
        assert notifier.notify(ks_event(message="Dependencies do not meet ready condition")) == 0
        dispatcher.drain()
        dispatcher.stop()

    assert [json.loads(r.body)["message"] for r in generic.received] == [
        "Reconciliation finished in 1s, next run in 10m",
        "boom",
        "apply failed",
    ]
    assert {r.headers["gotk-component"] for r in generic.received} == {"kustomize-controller"}
    first = json.loads(generic.received[0].body)
    assert first["metadata"] == {"revision": "main@sha1:0123abcd"}
    assert first["involvedObject"]["kind"] == "Kustomization"

    assert len(signed.received) == 1
    got = signed.received[0]
    expected = hmac.new(TOKEN.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-signature"] == f"sha256={expected}"
    assert got.headers["x-extra"] == HEADER
    assert json.loads(got.body)["metadata"] == {"revision": "main@sha1:0123abcd", "summary": "prod"}
    # The key signs, but is never sent, and no secret reaches a log or another receiver.
    assert TOKEN.encode() not in got.body
    assert all(
        HEADER.encode() not in r.body and TOKEN not in str(r.headers) for r in generic.received
    )
    assert TOKEN not in caplog.text
    assert HEADER not in caplog.text


def test_suspended_provider_sends_nothing() -> None:
    with receiver() as hook:
        store = MemoryStore(
            [
                provider_obj("p", {"type": "generic", "address": hook.url, "suspend": True}),
                alert_obj(
                    "a",
                    {
                        "providerRef": {"name": "p"},
                        "eventSources": [{"kind": "Kustomization", "name": "apps"}],
                    },
                ),
            ]
        )
        dispatcher = Dispatcher(loopback(hook), sleep=no_wait)
        dispatcher.start()
        assert Notifier(store, dispatcher).notify(ks_event()) == 0
        dispatcher.drain()
        dispatcher.stop()
    assert hook.received == []


def test_unavailable_receiver_is_retried_with_backoff_then_delivered() -> None:
    waits: list[float] = []
    with receiver() as hook:
        hook.statuses = [503, 502]
        dispatcher = Dispatcher(loopback(hook), attempts=4, backoff=0.5, sleep=waits.append)
        dispatcher.start()
        dispatcher.submit(OutboundRequest(hook.url, b"{}", {}, "ns/p"))
        dispatcher.drain()
        dispatcher.stop()
    assert len(hook.received) == 3
    assert waits == [0.5, 1.0]
    assert (dispatcher.outcome.sent, dispatcher.outcome.failed) == (1, 0)


def test_rejected_request_is_not_retried_and_gives_up_after_attempts() -> None:
    with receiver() as hook:
        hook.statuses = [400, 503, 503]
        dispatcher = Dispatcher(loopback(hook), attempts=2, sleep=no_wait)
        dispatcher.start()
        dispatcher.submit(OutboundRequest(hook.url, b"{}", {}, "ns/p"))
        dispatcher.submit(OutboundRequest(hook.url, b"{}", {}, "ns/p"))
        dispatcher.drain()
        dispatcher.stop()
    assert len(hook.received) == 3
    assert (dispatcher.outcome.sent, dispatcher.outcome.failed) == (0, 2)


def test_full_queue_drops_without_blocking_the_caller() -> None:
    with receiver() as hook:
        hook.gate.clear()  # the receiver hangs: an outage
        dispatcher = Dispatcher(loopback(hook), capacity=2, sleep=no_wait)
        dispatcher.start()
        request = OutboundRequest(hook.url, b"{}", {}, "ns/p")
        results = [dispatcher.submit(request) for _ in range(6)]
        # One is in flight, two wait in the queue; the rest are dropped at once.
        assert results.count(False) >= 3
        assert dispatcher.outcome.dropped == results.count(False)
        hook.gate.set()
        dispatcher.drain()
        dispatcher.stop()
    assert dispatcher.outcome.sent == results.count(True)


def test_loopback_is_refused_unless_the_policy_allows_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with receiver() as hook:
        policy = FetchPolicy(allowed_hosts=frozenset({hook.host}))
        dispatcher = Dispatcher(policy, sleep=no_wait)
        dispatcher.start()
        dispatcher.submit(OutboundRequest(hook.url + "?token=CANARY-q", b"{}", {}, "ns/p"))
        dispatcher.drain()
        dispatcher.stop()
    assert hook.received == []
    assert dispatcher.outcome.failed == 1
    assert "loopback" in caplog.text
    assert "CANARY" not in caplog.text


def test_host_outside_the_allow_list_is_refused() -> None:
    with receiver() as hook:
        policy = FetchPolicy(allowed_hosts=frozenset({"hooks.example.com"}), allow_loopback=True)
        dispatcher = Dispatcher(policy, sleep=no_wait)
        dispatcher.start()
        dispatcher.submit(OutboundRequest(hook.url, b"{}", {}, "ns/p"))
        dispatcher.drain()
        dispatcher.stop()
    assert hook.received == []
    assert dispatcher.outcome.failed == 1


def test_hanging_receiver_times_out_after_the_providers_timeout_and_is_given_up() -> None:
    with receiver() as hook:
        hook.gate.clear()
        dispatcher = Dispatcher(loopback(hook), attempts=2, sleep=no_wait)
        dispatcher.start()
        dispatcher.submit(OutboundRequest(hook.url, b"{}", {}, "ns/p", timeout=0.2))
        dispatcher.drain()
        dispatcher.stop()
    assert (dispatcher.outcome.attempts, dispatcher.outcome.failed) == (2, 1)


def test_a_post_never_follows_a_redirect() -> None:
    with receiver() as hook:
        hook.statuses = [307]
        dispatcher = Dispatcher(loopback(hook), sleep=no_wait)
        dispatcher.start()
        dispatcher.submit(OutboundRequest(hook.url, b"{}", {"Authorization": "t"}, "ns/p"))
        dispatcher.drain()
        dispatcher.stop()
    assert [r.path for r in hook.received] == ["/hook"]
    assert dispatcher.outcome.failed == 1
